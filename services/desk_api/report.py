"""The monthly report (月度报告), in the register of the district's own statistics ("共排查矛盾纠纷204起，化解
196起"): the counts first, then the rates, by dispute type and by source channel, 同比 and 环比 where there is
history, and the units below their floors. Markdown and CSV here; the page renders the same report as HTML.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from services.desk_api.supervision import Split, Supervision, UnitFigures
from shared.domain.figures import Figure, Measure, Period, Ratio, change
from shared.domain.triage import Unit
from shared.labels import CHANNELS, FIGURES, SPLIT_KEYS, UNITS, label

M = Measure
# The counts a report line gives, in order: what came in, what was done, what mediation achieved.
COUNTED = (M.RECEIVED, M.ROUTED, M.RESOLVED, M.MEDIATION_CONCLUDED, M.MEDIATION_AGREED, M.ESCALATED, M.OVERDUE)
COUNT_NAMES = {M.RECEIVED: "受理", M.ROUTED: "派单", M.RESOLVED: "办结", M.MEDIATION_CONCLUDED: "调解终结",
               M.MEDIATION_AGREED: "调解成功", M.ESCALATED: "督办", M.OVERDUE: "新增超期"}
COMPARED = (M.RESOLVED, M.MEDIATION_AGREED)  # after what came in, with 环比 and 同比


@dataclass(frozen=True)
class MonthlyReport:
    month: str
    unit: Unit | None  # None: the whole district
    total: UnitFigures
    previous: Counter[Measure]  # the month before (环比)
    year_ago: Counter[Measure]  # the same month a year before (同比)
    by_category: list[Split]
    by_channel: list[Split]
    units: list[UnitFigures]
    floors: dict[Figure, float]

    @property
    def title(self) -> str:
        year, month = self.month.split("-")
        return f"{year}年{int(month)}月{label(UNITS, self.unit) if self.unit else '全区'}矛盾纠纷化解工作月度报告"

    @property
    def intake(self) -> Measure:
        """What came in: cases opened (the district), or routed to the unit."""
        return M.RECEIVED if self.unit is None else M.ROUTED

    @property
    def received(self) -> int:
        return self.total.counts[self.intake]

    def compared(self, measure: Measure, base: Counter[Measure]) -> float | None:
        return change(self.total.counts[measure], base[measure]) if any(base.values()) else None

    def below(self) -> list[tuple[UnitFigures, Figure]]:
        return [(row, figure) for row in self.units for figure in row.below]


async def monthly_report(supervision: Supervision, month: str, unit: Unit | None = None) -> MonthlyReport:
    period = Period.month(month)
    overview = await supervision.overview(month, "month", unit)
    before = await supervision.month_counts([period.shifted(1).label, period.shifted(12).label], unit)
    return MonthlyReport(month=period.label, unit=unit, total=overview.total, previous=before[period.shifted(1).label],
                         year_ago=before[period.shifted(12).label], by_category=overview.by_category,
                         by_channel=overview.by_channel,
                         units=[r for r in overview.units if unit is None or r.unit is unit],
                         floors=supervision.floors)


def percent(ratio: Ratio | float | None) -> str:
    value = ratio.value if isinstance(ratio, Ratio) else ratio
    return "—" if value is None else f"{value * 100:.1f}%"


def signed(value: float | None) -> str:
    return "—" if value is None else f"{'增长' if value >= 0 else '下降'}{abs(value) * 100:.1f}%"


def summary(report: MonthlyReport) -> list[str]:
    """The report's opening sentences."""
    c, f = report.total.counts, report.total.figures
    year, month = report.month.split("-")
    where = "全区" if report.unit is None else label(UNITS, report.unit)
    lines = [f"{year}年{int(month)}月，{where}共受理矛盾纠纷{report.received}件，办结{c[M.RESOLVED]}件；"
             f"调解终结{c[M.MEDIATION_CONCLUDED]}件，其中调解成功{c[M.MEDIATION_AGREED]}件，"
             f"调解成功率{percent(f[Figure.MEDIATION_SUCCESS])}，调解协议金额{_yuan(report.total.amount)}元。",
             f"响应率{percent(f[Figure.RESPONSE])}，解决率{percent(f[Figure.RESOLUTION])}，"
             f"满意率{percent(f[Figure.SATISFACTION])}，按时办结率{percent(f[Figure.ON_TIME])}；"
             f"督办{c[M.ESCALATED]}件，新增超期{c[M.OVERDUE]}件，月末超期未办结{report.total.late_at_end}件。",
             f"回访{c[M.VISITED]}件，其中满意{c[M.VISITS_SATISFIED] - c[M.VISITS_BASICALLY]}件、基本满意"
             f"{c[M.VISITS_BASICALLY]}件、不满意{c[M.VISITS_DISSATISFIED]}件；群众表示问题已解决{c[M.VISITS_SOLVED]}件。"]
    comparisons = []
    for name, base in (("环比", report.previous), ("同比", report.year_ago)):
        if any(base.values()):
            comparisons.append(f"受理量{name}{signed(report.compared(report.intake, base))}，"
                               f"办结量{name}{signed(report.compared(M.RESOLVED, base))}")
    lines.append("；".join(comparisons) + "。" if comparisons else "无上月及上年同期数据，不作同比、环比。")
    below = report.below()
    lines.append("低于考核下限的单位：" + "；".join(
        f"{label(UNITS, row.unit)}{FIGURES[fig]}{percent(row.figures[fig])}（下限{percent(report.floors[fig])}）"
        for row, fig in below) + "。" if below else "各单位均未低于考核下限。")
    return lines


def _yuan(amount: Decimal) -> str:
    return f"{amount:,.2f}"


def tables(report: MonthlyReport) -> Iterator[tuple[str, list[str], list[list[str]]]]:
    """The report's tables: (title, header, rows), the same for Markdown, CSV and the page."""
    figures = list(Figure)
    header = [*(COUNT_NAMES[m] for m in COUNTED), *(FIGURES[f] for f in figures)]

    def line(counts: Counter[Measure], rates: dict[Figure, Ratio]) -> list[str]:
        return [*(str(counts[m]) for m in COUNTED), *(percent(rates[f]) for f in figures)]

    yield ("各单位", ["单位", *header, "月末超期未办结"],
           [[label(UNITS, r.unit), *line(r.counts, r.figures), str(r.late_at_end)] for r in report.units])
    yield ("按纠纷类型", ["纠纷类型", *header], [[label(SPLIT_KEYS, s.key), *line(s.counts, s.figures)]
                                              for s in report.by_category])
    yield ("按来源渠道", ["来源渠道", *header], [[label(CHANNELS, s.key), *line(s.counts, s.figures)]
                                              for s in report.by_channel])
    compare = [[COUNT_NAMES[m], str(report.total.counts[m]), str(report.previous[m]),
                signed(report.compared(m, report.previous)), str(report.year_ago[m]),
                signed(report.compared(m, report.year_ago))] for m in (report.intake, *COMPARED)]
    yield ("同比环比", ["指标", "本月", "上月", "环比", "上年同月", "同比"], compare)


def as_markdown(report: MonthlyReport) -> str:
    out = [f"# {report.title}", "", *(f"{line}\n" for line in summary(report))]
    for title, header, rows in tables(report):
        out += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(row) + " |" for row in rows]
        out.append("")
    return "\n".join(out)


def as_csv(report: MonthlyReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([report.title])
    for title, header, rows in tables(report):
        writer.writerow([])
        writer.writerow([title])
        writer.writerow(header)
        writer.writerows(rows)
    return buffer.getvalue()
