"""Deadline arithmetic for the legal time limits of the brief.

Periods follow the Civil Code (民法典):
- art. 201: the day a period starts is not counted; counting begins the next day;
- art. 202: a period in months ends on the corresponding day of the last month, or on that month's
  last day when it has no corresponding day;
- art. 203: when the last day is a public holiday or rest day, the period ends on the first working
  day after it; the last day ends at 24:00.

Working days follow the State Council's yearly schedule, with its swapped weekend working days (调休).
The schedule comes from the `chinese_calendar` package, overlaid by `holidays.yaml` next to this module
(operators add each year's schedule there) and optionally by an operator file. A date that neither
source knows falls back to "Monday to Friday are working days": a warning is logged once per year and
the `on_unknown_year` hook is called, never an exception.

All dates are local (China Standard Time) calendar dates; `local_date` converts an instant.
"""

from __future__ import annotations

import calendar as _gregorian
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

try:
    import chinese_calendar as _cc
except ImportError:  # pragma: no cover - it is a declared dependency; the YAML alone still works
    _cc = None

logger = logging.getLogger(__name__)

# China has had no daylight saving since 1991, so a fixed offset is exact and needs no tz database.
CHINA_TZ = timezone(timedelta(hours=8), "CST")

UnknownYearHook = Callable[[int], None]


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


# --- schedule data -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class YearSchedule:
    """One year's State Council schedule: days off on weekdays, and weekend days that are worked."""

    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()


def _parse_days(raw: Any, year: int, where: str) -> set[date]:
    if raw is None:
        return set()
    if not isinstance(raw, list):
        raise ValueError(f"{where}: expected a list of dates")
    days: set[date] = set()
    for item in raw:
        if isinstance(item, datetime):  # YAML timestamps; a date is what is meant
            item = item.date()
        if isinstance(item, date):
            days.add(item)
            continue
        if not isinstance(item, str):
            raise ValueError(f"{where}: {item!r} is not a date")
        # "2026-10-01..2026-10-07" saves operators typing out a nine-day Spring Festival.
        first_s, sep, last_s = item.partition("..")
        try:
            first = date.fromisoformat(first_s.strip())
            last = date.fromisoformat(last_s.strip()) if sep else first
        except ValueError:
            raise ValueError(f"{where}: {item!r} is not YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD") from None
        if last < first:
            raise ValueError(f"{where}: range {item!r} ends before it starts")
        days.update(first + timedelta(days=i) for i in range((last - first).days + 1))
    stray = sorted(d for d in days if d.year != year)
    if stray:
        raise ValueError(f"{where}: {stray[0].isoformat()} is not in {year}")
    return days


def parse_schedule(data: Any, origin: str = "<data>") -> dict[int, YearSchedule]:
    """Validate the YAML structure `{year: {holidays: [...], workdays: [...]}}`.

    Malformed operator data raises ValueError at load time: better to fail at start-up than to
    compute wrong deadlines for a year.
    """
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{origin}: expected a mapping of year to {{holidays, workdays}}")
    out: dict[int, YearSchedule] = {}
    for key, entry in data.items():
        try:
            year = int(key)
        except (TypeError, ValueError):
            raise ValueError(f"{origin}: {key!r} is not a year") from None
        where = f"{origin}: {year}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a mapping with 'holidays' and 'workdays'")
        extra = set(entry) - {"holidays", "workdays"}
        if extra:
            raise ValueError(f"{where}: unexpected keys {sorted(map(str, extra))}")
        holidays = _parse_days(entry.get("holidays"), year, f"{where}.holidays")
        workdays = _parse_days(entry.get("workdays"), year, f"{where}.workdays")
        # A year with no holidays is surely an unfinished entry; accepting it would silence the warning.
        if not holidays:
            raise ValueError(f"{where}: lists no holidays")
        both = sorted(holidays & workdays)
        if both:
            raise ValueError(f"{where}: {both[0].isoformat()} is both a holiday and a workday")
        out[year] = YearSchedule(frozenset(holidays), frozenset(workdays))
    return out


def merge_schedules(
    base: Mapping[int, YearSchedule], top: Mapping[int, YearSchedule]
) -> dict[int, YearSchedule]:
    """Overlay `top` on `base` day by day: a day listed in `top` wins over what `base` says about it."""
    merged = dict(base)
    for year, sched in top.items():
        below = merged.get(year, YearSchedule())
        merged[year] = YearSchedule(
            holidays=(below.holidays - sched.workdays) | sched.holidays,
            workdays=(below.workdays - sched.holidays) | sched.workdays,
        )
    return merged


def _load_yaml(text: str, origin: str) -> dict[int, YearSchedule]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{origin}: not valid YAML: {exc}") from exc
    except ValueError as exc:  # YAML's own timestamp parsing, e.g. month 13
        raise ValueError(f"{origin}: {exc}") from exc
    return parse_schedule(data, origin)


def load_schedule_file(path: str | Path) -> dict[int, YearSchedule]:
    p = Path(path)
    return _load_yaml(p.read_text(encoding="utf-8"), str(p))


@lru_cache(maxsize=1)
def packaged_schedule() -> Mapping[int, YearSchedule]:
    """The schedule shipped in `holidays.yaml` next to this module, read once per process."""
    resource = resources.files(__package__ or "shared.domain").joinpath("holidays.yaml")
    text = resource.read_text(encoding="utf-8")
    return MappingProxyType(_load_yaml(text, "holidays.yaml"))


# --- the calendar ------------------------------------------------------------------------------------


class Calendar:
    """Working days: `schedule` (operator data) over `chinese_calendar` over a weekends-only fallback."""

    def __init__(
        self,
        schedule: Mapping[int, YearSchedule] | None = None,
        *,
        on_unknown_year: UnknownYearHook | None = None,
        use_package: bool = True,
    ) -> None:
        self._schedule: Mapping[int, YearSchedule] = MappingProxyType(dict(schedule or {}))
        self._on_unknown_year = on_unknown_year
        self._use_package = use_package and _cc is not None
        self._warned: set[int] = set()

    def knows_year(self, year: int) -> bool:
        return year in self._schedule or self._package_workday(date(year, 6, 1)) is not None

    def is_workday(self, day: date) -> bool:
        unknown: set[int] = set()
        result = self._workday(day, unknown)
        self._report(unknown)
        return result

    def next_workday(self, day: date, *, include_self: bool = False) -> date:
        """The first working day after `day` (or `day` itself if `include_self` and it is one)."""
        unknown: set[int] = set()
        d = day if include_self else day + timedelta(days=1)
        while not self._workday(d, unknown):
            d += timedelta(days=1)
        self._report(unknown)
        return d

    def add_working_days(self, start: date, n: int) -> date:
        """The day on which the `n`-th working day after `start` falls (`start` itself not counted).

        A negative `n` counts working days backwards; `n == 0` returns `start`.
        """
        unknown: set[int] = set()
        step = timedelta(days=1 if n >= 0 else -1)
        d, left = start, abs(n)
        while left:
            d += step
            if self._workday(d, unknown):
                left -= 1
        self._report(unknown)
        return d

    # Day lookups collect unknown years so that each public call reports a year at most once.
    def _workday(self, day: date, unknown: set[int]) -> bool:
        sched = self._schedule.get(day.year)
        if sched is not None:
            if day in sched.workdays:
                return True
            if day in sched.holidays:
                return False
        pkg = self._package_workday(day)
        if pkg is not None:
            return pkg
        if sched is None:
            unknown.add(day.year)
        return day.weekday() < 5

    def _package_workday(self, day: date) -> bool | None:
        if not self._use_package or _cc is None:
            return None
        try:
            return bool(_cc.is_workday(day))
        except NotImplementedError:  # the package raises this for years it has no data for
            return None

    def _report(self, years: Iterable[int]) -> None:
        for year in sorted(years):
            if year not in self._warned:
                self._warned.add(year)
                logger.warning(
                    "no holiday schedule for %d: counting Monday-Friday as working days; "
                    "add %d to holidays.yaml",
                    year,
                    year,
                )
            if self._on_unknown_year is not None:
                try:
                    self._on_unknown_year(year)
                except Exception:  # a failing metrics hook must not break deadline arithmetic
                    logger.warning("on_unknown_year hook failed for %d", year, exc_info=True)


def load_calendar(
    override: str | Path | None = None,
    *,
    on_unknown_year: UnknownYearHook | None = None,
    use_package: bool = True,
) -> Calendar:
    """A calendar from the packaged schedule, with an operator file (if given) overlaid on it."""
    schedule: Mapping[int, YearSchedule] = packaged_schedule()
    if override is not None:
        schedule = merge_schedules(schedule, load_schedule_file(override))
    return Calendar(schedule, on_unknown_year=on_unknown_year, use_package=use_package)


@lru_cache(maxsize=1)
def default_calendar() -> Calendar:
    """The process-wide calendar used when none is passed: packaged data, no hook."""
    return load_calendar()


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


def local_date(when: datetime) -> date:
    """The China calendar date of an instant; a naive datetime is taken as UTC (as pymongo returns)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(CHINA_TZ).date()

