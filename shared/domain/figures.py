"""The supervisors' figures (the brief's "Supervisors' figures"), counted from facts (facts.py). Pure.

A `Tally` sums the facts of one unit and month by what they measure, by day, by category and by channel; tallies
add up, so a page sums the few tallies it needs instead of the facts. `figures_of` turns a period's counts into
the rates the 12345 platforms are judged by, each a `Ratio` that knows when it is undefined (nothing to divide
by), and `below_floors` says which rates fall short of the district's floors.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache

from shared.domain.facts import Fact, FactKind
from shared.domain.lifecycle import Satisfaction
from shared.domain.triage import Unit

NO_CATEGORY = "unclassified"


class Measure(StrEnum):
    RECEIVED = "received"
    REPEATS = "repeats"
    ROUTED = "routed"
    ACCEPTED = "accepted"
    ACCEPTED_IN_TIME = "accepted_in_time"
    HANDED_BACK = "handed_back"
    RESOLVED = "resolved"
    RESOLVED_IN_TIME = "resolved_in_time"
    MEDIATION_CONCLUDED = "mediation_concluded"
    MEDIATION_AGREED = "mediation_agreed"
    AGREEMENTS = "agreements"
    VISITED = "visited"
    VISITS_ASKED_SOLVED = "visits_asked_solved"
    VISITS_SOLVED = "visits_solved"
    VISITS_SATISFIED = "visits_satisfied"  # satisfied or basically satisfied
    VISITS_BASICALLY = "visits_basically_satisfied"
    VISITS_DISSATISFIED = "visits_dissatisfied"
    CLOSED = "closed"
    REOPENED = "reopened"
    ESCALATED = "escalated"
    OVERDUE = "overdue"  # became overdue


M = Measure
_PLAIN = {FactKind.RECEIVED: M.RECEIVED, FactKind.REPEAT: M.REPEATS, FactKind.ROUTED: M.ROUTED,
          FactKind.HANDED_BACK: M.HANDED_BACK, FactKind.AGREEMENT: M.AGREEMENTS, FactKind.CLOSED: M.CLOSED,
          FactKind.REOPENED: M.REOPENED, FactKind.ESCALATED: M.ESCALATED, FactKind.OVERDUE: M.OVERDUE}
_FLAGGED = {FactKind.ACCEPTED: (M.ACCEPTED, M.ACCEPTED_IN_TIME), FactKind.RESOLVED: (M.RESOLVED, M.RESOLVED_IN_TIME),
            FactKind.MEDIATION: (M.MEDIATION_CONCLUDED, M.MEDIATION_AGREED)}
SATISFIED = frozenset({Satisfaction.SATISFIED, Satisfaction.BASICALLY_SATISFIED})
ENDS_STAY = frozenset({FactKind.RESOLVED, FactKind.HANDED_BACK, FactKind.ESCALATED})


def measures(fact: Fact) -> tuple[Measure, ...]:
    """What one fact counts towards."""
    return _measures(fact.kind, fact.flag, fact.satisfaction)


@lru_cache(maxsize=256)
def _measures(kind: FactKind, flag: bool | None, satisfaction: Satisfaction | None) -> tuple[Measure, ...]:
    if kind in _PLAIN:
        return (_PLAIN[kind],)
    if kind in _FLAGGED:
        every, flagged = _FLAGGED[kind]
        return (every, flagged) if flag else (every,)
    found = [M.VISITED]  # a return visit
    if flag is not None:
        found.append(M.VISITS_ASKED_SOLVED)
        if flag:
            found.append(M.VISITS_SOLVED)
    if satisfaction in SATISFIED:
        found.append(M.VISITS_SATISFIED)
    if satisfaction is Satisfaction.BASICALLY_SATISFIED:
        found.append(M.VISITS_BASICALLY)
    elif satisfaction is Satisfaction.DISSATISFIED:
        found.append(M.VISITS_DISSATISFIED)
    return tuple(found)


@lru_cache(maxsize=4096)
def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


Stay = tuple[str, str]  # (case id, episode)


@dataclass
class Tally:
    """Counts of facts: by cohort day, and by cohort month with the category or the channel. Also what the
    overdue list needs: when each late stay became late and when it ended, and the escalations."""

    by_day: Counter[tuple[Measure, date]] = field(default_factory=Counter)
    by_category: Counter[tuple[Measure, str, str]] = field(default_factory=Counter)
    by_channel: Counter[tuple[Measure, str, str]] = field(default_factory=Counter)
    amount_by_day: dict[date, Decimal] = field(default_factory=dict)
    late_since: dict[Stay, tuple[Unit, date]] = field(default_factory=dict)
    stay_ended: dict[Stay, date] = field(default_factory=dict)
    escalations: list[tuple[str, Unit, date]] = field(default_factory=list)

    @classmethod
    def of(cls, facts: Iterable[Fact]) -> Tally:
        """The tally of these facts; of two with one id the first stands, as in the store."""
        tally, seen = cls(), set[str]()
        for fact in facts:
            if fact.id not in seen:
                seen.add(fact.id)
                tally.count(fact)
        return tally

    def count(self, fact: Fact) -> None:
        # The hot loop of a cold read (every fact of a year, once): plain dict operations, no enum lookups.
        cohort, channel = fact.cohort, fact.channel
        month, category = month_of(cohort), fact.category or NO_CATEGORY
        by_day, by_category, by_channel = self.by_day, self.by_category, self.by_channel
        for measure in _measures(fact.kind, fact.flag, fact.satisfaction):
            key = (measure, cohort)
            by_day[key] = by_day.get(key, 0) + 1
            split = (measure, month, category)
            by_category[split] = by_category.get(split, 0) + 1
            split = (measure, month, channel)
            by_channel[split] = by_channel.get(split, 0) + 1
        if fact.amount is not None:
            self.amount_by_day[fact.cohort] = self.amount_by_day.get(fact.cohort, Decimal(0)) + fact.amount
        stay = (fact.case_id, fact.episode)
        if fact.kind is FactKind.OVERDUE and fact.unit is not None:
            known = self.late_since.get(stay)
            if known is None or fact.day < known[1]:
                self.late_since[stay] = (fact.unit, fact.day)
        if fact.kind in ENDS_STAY and (stay not in self.stay_ended or fact.day < self.stay_ended[stay]):
            self.stay_ended[stay] = fact.day
        if fact.kind is FactKind.ESCALATED and fact.unit is not None:
            self.escalations.append((fact.case_id, fact.unit, fact.day))

    def absorb(self, other: Tally) -> None:
        """Add `other`'s counts to this tally's."""
        self.by_day.update(other.by_day)
        self.by_category.update(other.by_category)
        self.by_channel.update(other.by_channel)
        for day, amount in other.amount_by_day.items():
            self.amount_by_day[day] = self.amount_by_day.get(day, Decimal(0)) + amount
        for stay, (unit, day) in other.late_since.items():
            if stay not in self.late_since or day < self.late_since[stay][1]:
                self.late_since[stay] = (unit, day)
        for stay, day in other.stay_ended.items():
            if stay not in self.stay_ended or day < self.stay_ended[stay]:
                self.stay_ended[stay] = day
        self.escalations.extend(other.escalations)

    @classmethod
    def combined(cls, tallies: Iterable[Tally]) -> Tally:
        total = cls()
        for tally in tallies:
            total.absorb(tally)
        return total

    # --- reading it -----------------------------------------------------------------------------------

    def counts(self, period: Period) -> Counter[Measure]:
        found: Counter[Measure] = Counter()
        for (measure, day), n in self.by_day.items():
            if period.start <= day <= period.end:
                found[measure] += n
        return found

    def amount(self, period: Period) -> Decimal:
        return sum((a for day, a in self.amount_by_day.items() if period.start <= day <= period.end), Decimal(0))

    def split(self, by: str, months: Iterable[str]) -> dict[str, Counter[Measure]]:
        """The counts of these months by category (`by="category"`) or by channel."""
        counter = self.by_category if by == "category" else self.by_channel
        wanted, found = set(months), dict[str, Counter[Measure]]()
        for (measure, month, key), n in counter.items():
            if month in wanted:
                found.setdefault(key, Counter())[measure] += n
        return found

    def late_at(self, day: date) -> list[tuple[str, Unit, date]]:
        return late_at([self], day)

    def escalated_in(self, period: Period) -> list[tuple[str, Unit, date]]:
        return escalated_in([self], period)


def late_at(tallies: Iterable[Tally], day: date) -> list[tuple[str, Unit, date]]:
    """The stays late at the end of `day` (a limit passed, and not yet resolved, handed back or escalated):
    (case id, unit, late since), oldest first. Reads only what it needs of each tally (a page asks of years)."""
    since: dict[Stay, tuple[Unit, date]] = {}
    ended: dict[Stay, date] = {}
    for tally in tallies:
        for stay, (unit, first) in tally.late_since.items():
            if first <= day and (stay not in since or first < since[stay][1]):
                since[stay] = (unit, first)
        for stay, end in tally.stay_ended.items():
            if end <= day:
                ended[stay] = end
    late = [(case_id, unit, first) for (case_id, episode), (unit, first) in since.items()
            if (case_id, episode) not in ended]
    return sorted(late, key=lambda row: (row[2], row[0]))


def escalated_in(tallies: Iterable[Tally], period: Period) -> list[tuple[str, Unit, date]]:
    found = [e for tally in tallies for e in tally.escalations if period.start <= e[2] <= period.end]
    return sorted(found, key=lambda e: (e[2], e[0]))


# --- periods ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    @classmethod
    def month(cls, month: str) -> Period:
        """`2026-11` → 1 to 30 November 2026 (ValueError if it is not such a month)."""
        year, _, number = month.partition("-")
        first = date(int(year), int(number), 1)
        return cls(first, _next_month(first) - timedelta(days=1))

    @property
    def label(self) -> str:
        return month_of(self.start)

    def months(self) -> list[str]:
        found, day = [], self.start.replace(day=1)
        while day <= self.end:
            found.append(month_of(day))
            day = _next_month(day)
        return found

    def shifted(self, months: int) -> Period:
        """The month `months` before (negative: after) this period's first month."""
        first = self.start.replace(day=1)
        for _ in range(abs(months)):
            first = (first - timedelta(days=1)).replace(day=1) if months > 0 else _next_month(first)
        return Period.month(month_of(first))


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def trend_periods(end: date, grain: str, count: int) -> list[Period]:
    """The last `count` days, weeks (Monday to Sunday) or months up to `end`, oldest first."""
    if grain == "day":
        return [Period(end - timedelta(days=i), end - timedelta(days=i)) for i in reversed(range(count))]
    if grain == "week":
        monday = end - timedelta(days=end.weekday())
        return [Period(monday - timedelta(weeks=i), monday - timedelta(weeks=i) + timedelta(days=6))
                for i in reversed(range(count))]
    this = Period.month(month_of(end))
    return [this.shifted(i) for i in reversed(range(count))]


# --- the figures ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ratio:
    part: int
    whole: int

    @property
    def value(self) -> float | None:
        """None when there is nothing to divide by: no rate, rather than a made-up 0 or 100 %."""
        return self.part / self.whole if self.whole else None


class Figure(StrEnum):
    RESPONSE = "response"  # 响应率
    RESOLUTION = "resolution"  # 解决率
    SATISFACTION = "satisfaction"  # 满意率
    ON_TIME = "on_time"  # 按时办结率
    VISITED = "visited"  # 回访率
    REPEATS = "repeats"  # 重复投诉率
    HANDED_BACK = "handed_back"  # 退单率
    REOPENED = "reopened"  # 重办率
    MEDIATION_SUCCESS = "mediation_success"  # 调解成功率


# figure → (part, whole); a list in the whole is summed (repeats ÷ every report received, repeats included)
DEFINITIONS: Mapping[Figure, tuple[Measure, tuple[Measure, ...]]] = {
    Figure.RESPONSE: (M.ACCEPTED_IN_TIME, (M.ROUTED,)),
    Figure.RESOLUTION: (M.VISITS_SOLVED, (M.VISITS_ASKED_SOLVED,)),
    Figure.SATISFACTION: (M.VISITS_SATISFIED, (M.VISITED,)),
    Figure.ON_TIME: (M.RESOLVED_IN_TIME, (M.RESOLVED,)),
    Figure.VISITED: (M.CLOSED, (M.RESOLVED,)),
    Figure.REPEATS: (M.REPEATS, (M.RECEIVED, M.REPEATS)),
    Figure.HANDED_BACK: (M.HANDED_BACK, (M.ROUTED,)),
    Figure.REOPENED: (M.REOPENED, (M.RESOLVED,)),  # each reopening undoes a 办结 (the brief's "÷ closed" can top 100 %)
    Figure.MEDIATION_SUCCESS: (M.MEDIATION_AGREED, (M.MEDIATION_CONCLUDED,)),
}
DEFAULT_FLOORS: Mapping[Figure, float] = {Figure.SATISFACTION: 0.85, Figure.ON_TIME: 0.92}


def figures_of(counts: Mapping[Measure, int]) -> dict[Figure, Ratio]:
    return {figure: Ratio(counts.get(part, 0), sum(counts.get(m, 0) for m in whole))
            for figure, (part, whole) in DEFINITIONS.items()}


def below_floors(figures: Mapping[Figure, Ratio], floors: Mapping[Figure, float]) -> list[Figure]:
    """The figures under their floor; an undefined rate is under none."""
    return [figure for figure, floor in floors.items()
            if (value := figures[figure].value) is not None and value < floor]


def change(now: float | int | None, before: float | int | None) -> float | None:
    """同比 or 环比 as a fraction (0.1 = up 10 %); None without a base to compare with."""
    if now is None or before is None or before == 0:
        return None
    return (now - before) / before
