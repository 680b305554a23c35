"""The trend chart drawn on the server: an axis of whole steps, bars as high as their counts, text escaped."""

from __future__ import annotations

import re

from services.desk_api.charts import Point, trend_chart


def test_bars_stand_on_an_axis_of_whole_steps_and_labels_are_escaped() -> None:
    svg = str(trend_chart([Point("11/1", (3, 1), 0.5), Point("<b>", (0, 0), None)], ("派单", "办结"), "满意率", "趋势"))
    assert [int(t) for t in re.findall(r'text-anchor="end">(\d+)</text>', svg)] == [4, 3, 2, 1, 0]
    heights = [float(h) for h in re.findall(r'<rect class="bar-[ab]" [^>]*height="([\d.]+)"', svg)]
    assert heights[0] == 3 * heights[1] > 0 and heights[2:] == [0.0, 0.0]
    assert "<b>" not in svg and "&lt;b&gt;" in svg
    assert svg.count("<circle") == 1  # no rate, no point
