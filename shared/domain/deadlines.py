"""Deadline arithmetic for the legal time limits of the brief.

Periods follow the Civil Code (民法典):
- art. 201: the day a period starts is not counted; counting begins the next day;
- art. 202: a period in months ends on the corresponding day of the last month, or on that month's
  last day when it has no corresponding day;
- art. 203: when the last day is a public holiday or rest day, the period ends on the first working
  day after it; the last day ends at 24:00.

Working days come from shared/domain/workdays.py; all dates are local (China Standard Time) calendar dates.
"""

from __future__ import annotations

import calendar as _gregorian
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from types import MappingProxyType

from shared.domain.workdays import Calendar, default_calendar

# --- rules -------------------------------------------------------------------------------------------


class PeriodUnit(StrEnum):
    CALENDAR_DAYS = "calendar_days"
    WORKING_DAYS = "working_days"
    MONTHS = "months"


class RuleKind(StrEnum):
    LIMIT = "limit"  # the time allowed for a step
    EXTENSION = "extension"  # an extra period added to a limit; `length` is the maximum


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    kind: RuleKind
    length: int
    unit: PeriodUnit
    source: str
    summary: str
    extendable_by: str | None = None  # name of the extension rule that may prolong this limit


_XINFANG = "信访工作条例 (2022)"

RULES: Mapping[str, Rule] = MappingProxyType(
    {
        r.name: r
        for r in (
            Rule(
                "visitor.accept", RuleKind.LIMIT, 15, PeriodUnit.CALENDAR_DAYS,
                f"{_XINFANG} art. 22", "decide whether to accept a visit or letter",
            ),
            Rule(
                "visitor.resolve", RuleKind.LIMIT, 60, PeriodUnit.CALENDAR_DAYS,
                _XINFANG, "handle an accepted petition", extendable_by="visitor.extension",
            ),
            Rule(
                "visitor.extension", RuleKind.EXTENSION, 30, PeriodUnit.CALENDAR_DAYS,
                _XINFANG, "extend the handling period, with a reason",
            ),
            Rule(
                "visitor.review", RuleKind.LIMIT, 30, PeriodUnit.CALENDAR_DAYS,
                _XINFANG, "decide a review (复查) or re-review (复核)",
            ),
            Rule(
                "legal_aid.decision", RuleKind.LIMIT, 7, PeriodUnit.WORKING_DAYS,
                "办理法律援助案件程序规定 art. 13", "decide a legal-aid application",
            ),
            Rule(
                "mediation.resolve", RuleKind.LIMIT, 1, PeriodUnit.MONTHS,
                "人民调解工作若干规定 art. 33", "conclude a mediation",
            ),
            Rule(
                "hotline.consult", RuleKind.LIMIT, 2, PeriodUnit.WORKING_DAYS,
                "local 12345 rules", "answer a consultation",
            ),
            Rule(
                "hotline.help", RuleKind.LIMIT, 10, PeriodUnit.WORKING_DAYS,
                "local 12345 rules", "handle a request for help",
            ),
            Rule(
                "hotline.complaint", RuleKind.LIMIT, 15, PeriodUnit.WORKING_DAYS,
                "local 12345 rules", "handle a complaint",
            ),
        )
    }
)


def rule_names() -> list[str]:
    return sorted(RULES)


def get_rule(name: str) -> Rule:
    try:
        return RULES[name]
    except KeyError:
        raise ValueError(f"unknown deadline rule {name!r}; valid rules: {', '.join(rule_names())}") from None


# --- deadlines ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Deadline:
    rule: str
    start: date
    due: date  # the last day; the period ends at 24:00 local time on this day (art. 203)
    source: str


def add_months(start: date, months: int) -> date:
    """Civil Code art. 202: the corresponding day, or the month's last day when there is none."""
    index = start.year * 12 + (start.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    last = _gregorian.monthrange(year, month)[1]
    return date(year, month, min(start.day, last))


def _period_end(start: date, length: int, unit: PeriodUnit, cal: Calendar) -> date:
    if unit is PeriodUnit.WORKING_DAYS:
        return cal.add_working_days(start, length)
    # Adding to `start` already leaves the first day uncounted (art. 201).
    last = start + timedelta(days=length) if unit is PeriodUnit.CALENDAR_DAYS else add_months(start, length)
    return cal.next_workday(last, include_self=True)  # art. 203


def deadline(rule_name: str, start: date, calendar: Calendar | None = None) -> Deadline:
    rule = get_rule(rule_name)
    if rule.kind is RuleKind.EXTENSION:
        raise ValueError(f"{rule_name!r} is an extension: use extend() on the deadline it prolongs")
    cal = calendar or default_calendar()
    return Deadline(rule.name, start, _period_end(start, rule.length, rule.unit, cal), rule.source)


def due_date(rule_name: str, start: date, calendar: Calendar | None = None) -> date:
    return deadline(rule_name, start, calendar).due


def extend(original: Deadline, days: int | None = None, calendar: Calendar | None = None) -> Deadline:
    """Prolong `original` by up to its extension rule's length, counted from its due date.

    Only a limit whose rule names an extension can be extended, and an extension cannot itself be
    extended (the brief allows one extension).
    """
    rule = get_rule(original.rule)
    if rule.extendable_by is None:
        raise ValueError(f"deadline rule {original.rule!r} cannot be extended")
    ext = get_rule(rule.extendable_by)
    n = ext.length if days is None else days
    if not 1 <= n <= ext.length:
        raise ValueError(f"{ext.name} allows 1 to {ext.length} {ext.unit.value}, not {n}")
    cal = calendar or default_calendar()
    return Deadline(ext.name, original.due, _period_end(original.due, n, ext.unit, cal), ext.source)


def remind_on(deadline: Deadline, working_days_before: int = 1, calendar: Calendar | None = None) -> date:
    """The working day `working_days_before` working days before the due date.

    Never earlier than the first working day after the start, so a short period still gets its
    reminder after the case was opened, and never later than the due date.
    """
    if working_days_before < 0:
        raise ValueError("working_days_before must be >= 0")
    cal = calendar or default_calendar()
    remind = cal.add_working_days(deadline.due, -working_days_before)
    earliest = cal.next_workday(deadline.start)
    return min(max(remind, earliest), deadline.due)


def is_overdue(deadline: Deadline, today: date) -> bool:
    """True from the day after the due date: the last day runs until 24:00."""
    return today > deadline.due
