"""What the supervisors' figures are counted from: facts, each one thing that happened to a case at a unit
(routed there, accepted in time or not, handed back, resolved, visited…), read off the case's timeline.

A fact is decided by one timeline entry and what the case held steadily when it was added (its category, the
routing decisions, the deadlines it met), so the same entry gives the same fact whether it is read as it is
saved (`facts_of_change`) or later, from the whole timeline (`facts_of_case`, for a rebuild). Its id derives
from the entry's, so a redelivered event adds nothing new.

Most facts count in the period their unit got the case (the brief: "a case counts in the period it was
routed"): their `cohort` is the day the episode began, the routing or the escalation that brought the case to
the unit. Escalations and overdue limits count on their own day.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from shared.domain.case import Case
from shared.domain.change import TimelineEntry
from shared.domain.lifecycle import Action, CaseStatus, Satisfaction
from shared.domain.triage import Category, Unit, Urgency
from shared.domain.workdays import Calendar, local_date

CRITICAL_ACCEPT = timedelta(hours=2)  # 签收 of a critical case; every other case: by the next working day


class FactKind(StrEnum):
    RECEIVED = "received"  # a case opened (counted with its first unit)
    REPEAT = "repeat"  # another report of an open case, merged into it
    ROUTED = "routed"  # the case reached a unit: routed, or escalated to the command centre
    ACCEPTED = "accepted"  # 签收; `flag`: within the acceptance limit
    HANDED_BACK = "handed_back"  # 退单
    RESOLVED = "resolved"  # 办结; `flag`: by every due date it met
    MEDIATION = "mediation"  # a mediation case concluded; `flag`: with an agreement
    AGREEMENT = "agreement"  # 调解协议 recorded; `amount`
    VISITED = "visited"  # 回访; `satisfaction`, `flag`: solved (None: not asked)
    CLOSED = "closed"
    REOPENED = "reopened"  # 重办
    ESCALATED = "escalated"  # 督办, by a desk or by an overdue limit
    OVERDUE = "overdue"  # a limit passed while the case was with the unit


@dataclass(frozen=True, slots=True)
class Fact:
    id: str
    kind: FactKind
    case_id: str
    episode: str  # which stay of the case at its unit: the routing attempt, "e" added once escalated
    unit: Unit | None  # None: a repeat merged before the case was routed
    day: date  # when it happened (China's calendar day)
    cohort: date  # the day it counts on
    category: Category | None
    channel: str
    flag: bool | None = None
    satisfaction: Satisfaction | None = None
    amount: Decimal | None = None


@dataclass
class _Stay:
    """Where the case is, as the facts need it: which unit has it, since when, under which routing."""

    unit: Unit | None
    attempt: int
    escalated: bool
    start: datetime | None
    category: Category | None
    agreed: bool

    @property
    def episode(self) -> str:
        return f"{self.attempt}{'e' if self.escalated else ''}"


def _stay_of(case: Case) -> _Stay:
    """The stay as the case holds it now (after the change being read)."""
    escalated = bool(case.escalated_at and case.unit is Unit.COMMAND and case.routed_at
                     and case.escalated_at >= case.routed_at)
    return _Stay(case.unit, case.routing_attempt, escalated, case.escalated_at if escalated else case.routed_at,
                 case.category, case.agreement is not None)


def facts_of_change(case: Case, entries: Sequence[TimelineEntry], calendar: Calendar) -> list[Fact]:
    """The facts of the entries a save adds, read with the case as saved."""
    return list(_read(case, entries, _stay_of(case), calendar))


def facts_of_case(case: Case, timeline: Sequence[TimelineEntry], calendar: Calendar) -> list[Fact]:
    """Every fact of a case, from its whole timeline: what a rebuild files."""
    stay = _Stay(None, 0, False, None, None, False)
    return list(_read(case, timeline, stay, calendar))


def _read(case: Case, entries: Iterable[TimelineEntry], stay: _Stay, calendar: Calendar) -> Iterator[Fact]:
    for entry in entries:
        yield from _facts(case, entry, stay, calendar)


def _facts(case: Case, entry: TimelineEntry, stay: _Stay, calendar: Calendar) -> Iterator[Fact]:
    """The facts of one entry; entries that move the case update `stay` first (they are read again, from the
    stay they made, when a save's entries are read after the save: setting the same values changes nothing)."""
    d, at, day = entry.detail, entry.at, local_date(entry.at)

    def fact(kind: FactKind, unit: Unit | None, cohort: date | None = None, suffix: str = "", *,
             flag: bool | None = None, satisfaction: Satisfaction | None = None, amount: Decimal | None = None,
             episode: str | None = None, once: bool = False) -> Fact:
        """`once`: one such fact per stay (the first stands), not one per entry."""
        key = f"{kind.value}:{stay.episode}" if once else f"{entry.id}{suffix}"
        return Fact(id=f"{case.id}/{key}", kind=kind, case_id=case.id, episode=episode or stay.episode,
                    unit=unit, day=day, cohort=cohort or (local_date(stay.start) if stay.start else day),
                    category=stay.category, channel=case.channel, flag=flag, satisfaction=satisfaction,
                    amount=amount)

    kind = entry.kind
    if kind == "classified":
        stay.category = Category(d["category"]) if d.get("category") else stay.category
    elif kind == "merged":
        yield fact(FactKind.REPEAT, stay.unit, day)
    elif kind == "routed":
        stay.unit, stay.attempt, stay.escalated, stay.start = Unit(d["unit"]), int(d.get("attempt", 0)), False, at
        if stay.attempt == 0:
            yield fact(FactKind.RECEIVED, stay.unit, local_date(case.received_at), ":received")
        yield fact(FactKind.ROUTED, stay.unit, day)
    elif kind in ("escalated", Action.ESCALATE.value):  # by an overdue limit, or by a desk
        yield fact(FactKind.ESCALATED, Unit(d["unit"]), day, episode=str(stay.attempt))  # from a stay not escalated
        stay.unit, stay.escalated, stay.start = Unit.COMMAND, True, at
        yield fact(FactKind.ROUTED, Unit.COMMAND, day, ":routed")
    elif kind == "overdue":
        yield fact(FactKind.OVERDUE, Unit(d["unit"]), day, once=True)  # the case is late, however many limits
    elif kind == Action.ACCEPT.value:
        # the first 签收 of a stay answers the routing; one after a reopening does not count again
        yield fact(FactKind.ACCEPTED, Unit(d["unit"]), flag=_accepted_in_time(case, stay, at, calendar), once=True)
    elif kind == Action.HAND_BACK.value:
        yield fact(FactKind.HANDED_BACK, Unit(d["unit"]))
    elif kind == Action.RECORD_AGREEMENT.value:
        stay.agreed = True
        yield fact(FactKind.AGREEMENT, Unit(d["unit"]), amount=_amount(d.get("amount")))
    elif kind == Action.RESOLVE.value:
        unit = Unit(d["unit"])
        yield fact(FactKind.RESOLVED, unit, flag=_resolved_in_time(case, at))
        if unit is Unit.MEDIATION:
            yield fact(FactKind.MEDIATION, unit, suffix=":mediation", flag=stay.agreed)
    elif kind == Action.RETURN_VISIT.value:
        unit = Unit(d["unit"])
        solved = d.get("solved")
        yield fact(FactKind.VISITED, unit, satisfaction=Satisfaction(d["satisfaction"]),
                   flag=solved if isinstance(solved, bool) else None)
        after = d.get("after")
        if after in (CaseStatus.CLOSED.value, CaseStatus.REOPENED.value):
            closed = after == CaseStatus.CLOSED.value
            yield fact(FactKind.CLOSED if closed else FactKind.REOPENED, unit, suffix=f":{after}")


def _accepted_in_time(case: Case, stay: _Stay, at: datetime, calendar: Calendar) -> bool:
    """Within 2 hours of reaching the unit for a critical case, else by the end of the next working day."""
    if stay.start is None:
        return False
    decision = case.routings.get(str(stay.attempt))
    urgency = decision.urgency if decision is not None else case.urgency
    if urgency is Urgency.CRITICAL:
        return _utc(at) - _utc(stay.start) <= CRITICAL_ACCEPT
    return local_date(at) <= calendar.add_working_days(local_date(stay.start), 1)


def _resolved_in_time(case: Case, at: datetime) -> bool:
    """No limit this resolution met was past its due day (an extension's later day included)."""
    met = [d.due for d in case.deadlines.values() if d.met_at is not None and _utc(d.met_at) == _utc(at)]
    return all(local_date(at).isoformat() <= due for due in met)


def _utc(when: datetime) -> datetime:
    """An instant in UTC at the store's precision (milliseconds); naive datetimes are UTC, as pymongo's are."""
    aware = (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
    return aware.replace(microsecond=aware.microsecond // 1000 * 1000)


def _amount(raw: object) -> Decimal | None:
    try:
        return Decimal(str(raw)) if raw is not None else None
    except InvalidOperation:
        return None
