"""Follow-up policy: which legal time limits a case is held to, and the timers that enforce them.

Pure: given what happened to a case, it says which deadlines open and when each reminder, overdue
notice and escalation falls due. The follow-up service stores these as durable timers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from shared.domain.deadlines import Deadline, deadline, remind_on
from shared.domain.triage import Category, Unit
from shared.domain.workdays import CHINA_TZ, Calendar, default_calendar

# 12345 rules distinguish consultations, requests for help and complaints (咨询 / 求助 / 投诉).
_HOTLINE_CONSULT = frozenset({Category.LEGAL_AID, Category.OTHER})
_HOTLINE_HELP = frozenset({
    Category.SAFETY_HAZARD, Category.PUBLIC_SECURITY, Category.FRAUD, Category.URBAN_MANAGEMENT,
    Category.ENVIRONMENT,
})

ESCALATE_AFTER_WORKING_DAYS = 2  # overdue this long without being resolved: the command centre steps in


class TimerKind(StrEnum):
    REMIND = "remind"
    OVERDUE = "overdue"
    ESCALATE = "escalate"


@dataclass(frozen=True)
class Timer:
    rule: str
    kind: TimerKind
    due_at: datetime


@dataclass(frozen=True)
class TimerSpec:
    """A durable timer of one case: `kind` for the deadline `rule` (due on `due`), at `due_at`."""

    case_id: str
    rule: str
    due: str
    kind: TimerKind
    due_at: datetime

    @property
    def id(self) -> str:
        """The id names the deadline's due date, so an extension makes new timers, not changed ones."""
        return f"{self.case_id}:{self.rule}:{self.due}:{self.kind.value}"

    def filed_on(self, today: date) -> str:
        """The day a timer is filed under: the day it falls due, or today for one already overdue (a day
        the scan has not left)."""
        return max(self.due_at.date(), today).isoformat()


def hotline_rule(category: Category) -> str:
    if category in _HOTLINE_CONSULT:
        return "hotline.consult"
    if category in _HOTLINE_HELP:
        return "hotline.help"
    return "hotline.complaint"


def deadlines_on_routing(
    unit: Unit, category: Category, channel: str, on: date, calendar: Calendar | None = None
) -> list[Deadline]:
    """The limits that start when a case reaches a unit."""
    rules = []
    if unit is Unit.VISITOR:
        rules.append("visitor.accept")
    if channel == "12345":
        rules.append(hotline_rule(category))
    return [deadline(rule, on, calendar) for rule in rules]


def deadlines_on_acceptance(
    unit: Unit, category: Category, on: date, calendar: Calendar | None = None
) -> list[Deadline]:
    """The limits that start when a desk accepts the case."""
    if unit is Unit.VISITOR:
        return [deadline("visitor.resolve", on, calendar)]
    if unit is Unit.LEGAL and category is Category.LEGAL_AID:
        return [deadline("legal_aid.decision", on, calendar)]
    if unit is Unit.MEDIATION:
        return [deadline("mediation.resolve", on, calendar)]
    return []


def _local(day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=CHINA_TZ)


def timers_for(d: Deadline, calendar: Calendar | None = None) -> list[Timer]:
    """A reminder on the working day before the due date (9:00), overdue when the last day has ended,
    escalation when it is still open some working days later."""
    cal = calendar or default_calendar()
    overdue_day = d.due + timedelta(days=1)
    return [
        Timer(d.rule, TimerKind.REMIND, _local(remind_on(d, 1, cal), time(9))),
        Timer(d.rule, TimerKind.OVERDUE, _local(overdue_day, time(0))),
        Timer(d.rule, TimerKind.ESCALATE,
              _local(cal.add_working_days(d.due, ESCALATE_AFTER_WORKING_DAYS), time(9))),
    ]


def timers_of(case_id: str, deadlines: list[Deadline], calendar: Calendar | None = None) -> list[TimerSpec]:
    """Every timer that holds a case to these deadlines."""
    return [TimerSpec(case_id, d.rule, d.due.isoformat(), t.kind, t.due_at)
            for d in deadlines for t in timers_for(d, calendar)]
