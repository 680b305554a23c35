"""Charts drawn on the server as SVG: no script library to fetch, nothing for a district network to block, and
a chart that prints. Every number is also in a table beside it (and in its CSV), so the chart only shows shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 760, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 48, 16, 40
BAR_CLASSES = ("bar-a", "bar-b")


@dataclass(frozen=True)
class Point:
    label: str
    bars: tuple[int, ...]  # one bar per series, counted
    rate: float | None  # drawn as a line on the right-hand 0-100 % axis; None leaves a gap


def trend_chart(points: Sequence[Point], series: Sequence[str], rate_name: str, title: str) -> Markup:
    """Grouped bars for the counts and a line for one rate, with a legend; `title` is the chart's accessible
    name."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    highest = max([1, *(b for p in points for b in p.bars)])
    top = 4 * _nice(-(-highest // 4))  # four equal, whole steps up the axis
    slot = plot_w / max(1, len(points))
    bar_w = min(24.0, max(2.0, slot * 0.7 / max(1, len(series))))
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for i in range(5):  # grid and both axes' figures
        y = TOP + plot_h * i / 4
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{top * (4 - i) // 4}</text>')
        parts.append(f'<text class="axis" x="{WIDTH - RIGHT + 6}" y="{y + 4:.1f}">{100 - 25 * i}%</text>')
    every = max(1, len(points) // 12)  # at most a dozen labels under the axis
    line: list[str] = []
    for n, point in enumerate(points):
        x0 = LEFT + slot * (n + 0.5) - bar_w * len(point.bars) / 2
        for s, value in enumerate(point.bars):
            h = plot_h * value / top
            parts.append(f'<rect class="{BAR_CLASSES[s % 2]}" x="{x0 + s * bar_w:.1f}" y="{TOP + plot_h - h:.1f}" '
                         f'width="{bar_w:.1f}" height="{h:.1f}"><title>{escape(point.label)} {escape(series[s])}'
                         f' {value}</title></rect>')
        if n % every == 0:
            parts.append(f'<text class="axis" x="{LEFT + slot * (n + 0.5):.1f}" y="{HEIGHT - BOTTOM + 16}" '
                         f'text-anchor="middle">{escape(point.label)}</text>')
        if point.rate is not None:
            x, y = LEFT + slot * (n + 0.5), TOP + plot_h * (1 - point.rate)
            line.append(f"{x:.1f},{y:.1f}")
            parts.append(f'<circle class="rate" cx="{x:.1f}" cy="{y:.1f}" r="3"><title>{escape(point.label)} '
                         f'{escape(rate_name)} {point.rate * 100:.1f}%</title></circle>')
    if len(line) > 1:
        parts.append(f'<polyline class="rate" points="{" ".join(line)}"/>')
    legend = [*((escape(name), BAR_CLASSES[s % 2]) for s, name in enumerate(series)), (escape(rate_name), "rate")]
    for n, (name, css) in enumerate(legend):
        x = LEFT + n * 120
        parts.append(f'<rect class="{css} key" x="{x}" y="{HEIGHT - 14}" width="10" height="10"/>'
                     f'<text class="axis" x="{x + 14}" y="{HEIGHT - 5}">{name}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _nice(value: int) -> int:
    """A round step for the count axis: 1, 2 or 5 times a power of ten, at least `value`."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10
