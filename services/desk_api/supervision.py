"""What the supervisors read: every unit's figures for a month, their trends, the breakdowns by category and
channel, the cases late now and the escalations, and the monthly report. Read-only, over every unit, from the
figures' tallies (the FigureBook port), never from the cases; nothing here can carry personal data, since the
facts have none.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from shared.domain.figures import (
    Figure,
    Measure,
    Period,
    Ratio,
    Tally,
    below_floors,
    escalated_in,
    figures_of,
    late_at,
    month_of,
    trend_periods,
)
from shared.domain.triage import Unit
from shared.domain.workdays import local_date
from shared.metrics import SUPERVISOR_CASES, SUPERVISOR_RATE
from shared.ports import FigureBook

# How far back a late case is looked for: a stay late longer than this is no longer counted (the figures' facts
# are filed by the month a stay began, so the lists read every month of the horizon).
HORIZON_MONTHS = 24
TREND_POINTS = 12
GRAINS = ("day", "week", "month")
Key = tuple[Unit | None, str]  # (unit, month); unit None: repeats merged before the case was routed


@dataclass(frozen=True)
class UnitFigures:
    unit: Unit | None  # None: the whole platform
    counts: Counter[Measure]
    figures: dict[Figure, Ratio]
    below: list[Figure]
    late_at_end: int  # late at the period's end (now, for the current month)
    amount: Decimal  # settled by mediation agreements


@dataclass(frozen=True)
class Split:
    """One line of a breakdown: a category's or a channel's counts and rates."""

    key: str
    counts: Counter[Measure]
    figures: dict[Figure, Ratio]


@dataclass(frozen=True)
class Overview:
    period: Period
    end: date  # the day the late count is taken: the month's last day, or today
    units: list[UnitFigures]
    total: UnitFigures
    grain: str
    trend: list[tuple[Period, Counter[Measure]]]
    by_category: list[Split]
    by_channel: list[Split]
    late: list[tuple[str, Unit, date]]
    escalated: list[tuple[str, Unit, date]]


class Supervision:
    def __init__(self, figures: FigureBook, floors: Mapping[Figure, float], clock: Callable[[], datetime]) -> None:
        self.figures = figures
        self.floors = dict(floors)
        self.clock = clock

    def today(self) -> date:
        return local_date(self.clock())

    def current_month(self) -> str:
        return month_of(self.today())

    async def tallies(self, months: Iterable[str]) -> dict[Key, Tally]:
        keys: list[Key] = [(unit, month) for month in months for unit in [*Unit, None]]
        found = await asyncio.gather(*(self.figures.tally(unit, month) for unit, month in keys))
        return dict(zip(keys, found, strict=True))

    async def overview(self, month: str, grain: str = "day", unit: Unit | None = None) -> Overview:
        """The month's figures of every unit; the trend, breakdowns and lists of one unit, or of all."""
        period = Period.month(month)
        months = [period.shifted(i).label for i in reversed(range(HORIZON_MONTHS))]
        tallies = await self.tallies(months)
        end = min(period.end, self.today())
        rows = [self._unit_figures(u, {k: t for k, t in tallies.items() if k[0] is u}, period, end) for u in Unit]
        chosen = {k: t for k, t in tallies.items() if unit is None or k[0] is unit}
        total = self._unit_figures(unit, chosen, period, end)
        shown = Tally.combined(t for (_, m), t in chosen.items() if m == month)
        return Overview(
            period=period, end=end, units=rows, total=total, grain=grain,
            trend=[(p, _counts(chosen, p)) for p in _trend(period, grain, self.today())],
            by_category=_splits(shown, "category", month), by_channel=_splits(shown, "channel", month),
            late=late_at(chosen.values(), end), escalated=escalated_in(chosen.values(), period))

    def _unit_figures(self, unit: Unit | None, tallies: Mapping[Key, Tally], period: Period,
                      end: date) -> UnitFigures:
        counts = _counts(tallies, period)
        figures = figures_of(counts)
        amount = sum((t.amount(period) for (_, m), t in tallies.items() if m in period.months()), Decimal(0))
        return UnitFigures(unit, counts, figures, below_floors(figures, self.floors) if unit is not None else [],
                           len(late_at(tallies.values(), end)), amount)

    async def export(self) -> None:
        """The current month's figures as Prometheus gauges, per unit: for the dashboards and the alert rules."""
        view = await self.overview(self.current_month())
        for row in view.units:
            assert row.unit is not None
            for figure, ratio in row.figures.items():
                if ratio.value is None:  # undefined: no series, rather than a made-up 0
                    with contextlib.suppress(KeyError):
                        SUPERVISOR_RATE.remove(row.unit.value, figure.value)
                else:
                    SUPERVISOR_RATE.labels(row.unit.value, figure.value).set(ratio.value)
            counted = {"received": row.counts[Measure.RECEIVED], "routed": row.counts[Measure.ROUTED],
                       "resolved": row.counts[Measure.RESOLVED], "overdue_open": row.late_at_end,
                       "overdue_new": row.counts[Measure.OVERDUE], "escalated": row.counts[Measure.ESCALATED]}
            for name, value in counted.items():
                SUPERVISOR_CASES.labels(row.unit.value, name).set(value)

    async def month_counts(self, months: Iterable[str], unit: Unit | None = None) -> dict[str, Counter[Measure]]:
        """Each month's counts (of a unit, or of all), for 同比 and 环比."""
        wanted = list(months)
        tallies = await self.tallies(wanted)
        chosen = {k: t for k, t in tallies.items() if unit is None or k[0] is unit}
        return {m: _counts(chosen, Period.month(m)) for m in wanted}


def _counts(tallies: Mapping[Key, Tally], period: Period) -> Counter[Measure]:
    """The counts of a period, from the tallies of the months it covers (a tally holds one month)."""
    months, total = set(period.months()), Counter[Measure]()
    for (_, month), tally in tallies.items():
        if month in months:
            total.update(tally.counts(period))
    return total


def _splits(tally: Tally, by: str, month: str) -> list[Split]:
    found = tally.split(by, [month])
    rows = [Split(key, counts, figures_of(counts)) for key, counts in found.items()]
    return sorted(rows, key=lambda s: (-s.counts[Measure.ROUTED], -s.counts[Measure.RECEIVED], s.key))


def _trend(period: Period, grain: str, today: date) -> list[Period]:
    """Days of the month (to today), or the 12 weeks or months up to its end."""
    end = min(period.end, max(today, period.start))
    if grain == "day":
        return trend_periods(end, "day", (end - period.start).days + 1)
    return trend_periods(end, grain, TREND_POINTS)
