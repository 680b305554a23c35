"""Working days in China: the State Council's yearly schedule, with its swapped weekend working days (调休).

The schedule comes from the `chinese_calendar` package, overlaid by `holidays.yaml` next to this module
(operators add each year's schedule there) and optionally by an operator file. A date that neither
source knows falls back to "Monday to Friday are working days": a warning is logged once per year and
the `on_unknown_year` hook is called, never an exception.

All dates are local (China Standard Time) calendar dates; `local_date` converts an instant.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
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
        return _package_says(day)

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


@lru_cache(maxsize=4096)
def _package_says(day: date) -> bool | None:
    """The package's answer for a day, kept: every routed case asks about the same few weeks, and the package
    validates each date anew."""
    try:
        return bool(_cc.is_workday(day)) if _cc is not None else None
    except NotImplementedError:  # the package raises this for years it has no data for
        return None


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


def local_date(when: datetime) -> date:
    """The China calendar date of an instant; a naive datetime is taken as UTC (as pymongo returns)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(CHINA_TZ).date()
