"""The desks' queue: what a desk sees of each open case, in the order it should be worked, and how near each
deadline is. Pure, no I/O: the queue's store (the `DeskQueue` port) keeps these entries, and a desk's page is
cut here from all of its unit's entries, so no store has to sort or filter (FerretDB cannot do either fast).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from shared.domain.case import Case
from shared.domain.lifecycle import OPEN_STATUSES, CaseStatus
from shared.domain.triage import Category, Unit, Urgency
from shared.domain.workdays import Calendar

EXCERPT_CHARS = 60


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One case as its unit's queue shows it; `version` is the case's, so an older copy never overwrites it.
    A plain slotted dataclass: a page read builds one per open case of the unit (10,000 in the benchmark)."""

    case_id: str
    version: int
    unit: Unit
    status: CaseStatus
    urgency: Urgency | None
    category: Category | None
    channel: str
    overdue: bool
    needs_review: bool
    external_ref: str | None
    received_at: datetime
    due: date | None  # the nearest open deadline's due day
    rule: str | None  # that deadline's rule
    excerpt: str


def entry_of(case: Case) -> QueueEntry | None:
    """The case's queue entry; None when it is in no queue (not routed yet, or closed)."""
    if case.unit is None or case.status is CaseStatus.CLOSED:
        return None
    open_deadlines = sorted((d.due, d.rule) for d in case.deadlines.values() if d.is_open)
    due, rule = open_deadlines[0] if open_deadlines else (None, None)
    received = case.received_at if case.received_at.tzinfo else case.received_at.replace(tzinfo=UTC)
    return QueueEntry(
        case_id=case.id, version=case.version, unit=case.unit, status=case.status, urgency=case.urgency,
        category=case.category, channel=case.channel, overdue=case.overdue, needs_review=case.needs_review,
        external_ref=case.external_ref, received_at=received, due=date.fromisoformat(due) if due else None,
        rule=rule, excerpt=" ".join(case.text.split())[:EXCERPT_CHARS],
    )


def queue_order(entry: QueueEntry) -> tuple[bool, date, int, datetime, str]:
    """Nearest due first (none last), then the most urgent, then the longest waiting, then by id."""
    urgency = entry.urgency.rank if entry.urgency is not None else -1
    return entry.due is None, entry.due or date.max, -urgency, entry.received_at, entry.case_id


class QueueFilter(BaseModel):
    """What a desk asks to see; every criterion left out lets everything through."""

    model_config = ConfigDict(frozen=True)

    statuses: frozenset[CaseStatus] = OPEN_STATUSES
    urgency: Urgency | None = None
    overdue: bool | None = None
    category: Category | None = None
    channel: str | None = None
    needs_review: bool | None = None
    search: str | None = None  # a case id or external reference, whole or its beginning, any case

    def matches(self, entry: QueueEntry) -> bool:
        return entry.status in self.statuses and self.matches_besides_status(entry)

    def matches_besides_status(self, entry: QueueEntry) -> bool:
        """Every criterion but `statuses`: what the status tabs count."""
        return ((self.urgency is None or entry.urgency is self.urgency)
                and (self.overdue is None or entry.overdue is self.overdue)
                and (self.category is None or entry.category is self.category)
                and (self.channel is None or entry.channel == self.channel)
                and (self.needs_review is None or entry.needs_review is self.needs_review)
                and self._found(entry))

    def _found(self, entry: QueueEntry) -> bool:
        wanted = (self.search or "").strip().casefold()
        return not wanted or any(ref.casefold().startswith(wanted) for ref in (entry.case_id, entry.external_ref)
                                 if ref)


@dataclass(frozen=True)
class QueuePage:
    entries: list[QueueEntry]
    total: int  # entries matching the filter
    page: int  # 1-based, within [1, pages]
    page_size: int
    pages: int  # at least 1, so an empty queue still has its (empty) first page
    counts: dict[CaseStatus, int]  # per open status, over the entries matching all but `statuses`


def queue_page(entries: Iterable[QueueEntry], filter: QueueFilter, page: int, page_size: int) -> QueuePage:
    """One page of the filtered queue in queue order; a page past either end gives the nearest one."""
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, not {page_size}")
    counts = dict.fromkeys(sorted(OPEN_STATUSES, key=list(CaseStatus).index), 0)
    chosen: list[QueueEntry] = []
    for entry in entries:
        if filter.matches_besides_status(entry):
            counts[entry.status] = counts.get(entry.status, 0) + 1
            if entry.status in filter.statuses:
                chosen.append(entry)
    chosen.sort(key=queue_order)
    pages = max(1, math.ceil(len(chosen) / page_size))
    page = min(max(page, 1), pages)
    start = (page - 1) * page_size
    return QueuePage(chosen[start:start + page_size], len(chosen), page, page_size, pages, counts)


class Colour(StrEnum):
    GREEN = "green"
    AMBER = "amber"
    RED = "red"
    NONE = "none"


@dataclass(frozen=True)
class Countdown:
    colour: Colour
    working_days_left: int | None  # negative when overdue
    label: str


def countdown(due: date | None, today: date, calendar: Calendar) -> Countdown:
    """How near a deadline is, in working days (limits are set in working days): red once passed, amber on
    its last working day or the one before. (No clock is ever paused: a petition's one extension is granted
    when it is asked for, and moves the due date instead.)"""
    if due is None:
        return Countdown(Colour.NONE, None, "无时限")
    if due < today:
        left = -_working_days_between(due, today, calendar)
        label = f"超期 {-left} 个工作日" if left else "已超期"
        colour = Colour.RED
    else:
        left = _working_days_between(today, due, calendar)
        label = "今日到期" if due == today else f"剩 {left} 个工作日"
        colour = Colour.AMBER if left <= 1 else Colour.GREEN
    return Countdown(colour, left, label)


def _working_days_between(after: date, until: date, calendar: Calendar) -> int:
    """Working days strictly after `after`, up to and including `until`."""
    days, day = 0, after + timedelta(days=1)
    while day <= until:
        days += calendar.is_workday(day)
        day += timedelta(days=1)
    return days
