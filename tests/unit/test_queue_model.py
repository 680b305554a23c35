"""The desks' queue as pure functions: the entry of a case, the order, the filter, the page and the countdown."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from shared.domain.case import Case
from shared.domain.change import OpenDeadline
from shared.domain.lifecycle import OPEN_STATUSES, CaseStatus
from shared.domain.queue import (
    Colour,
    QueueEntry,
    QueueFilter,
    countdown,
    entry_of,
    queue_order,
    queue_page,
)
from shared.domain.triage import Category, Unit, Urgency
from shared.domain.workdays import default_calendar

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
S = CaseStatus


def entry(case_id: str, **fields: Any) -> QueueEntry:
    values: dict[str, Any] = dict(
        case_id=case_id, version=1, unit=Unit.MEDIATION, status=S.ROUTED, urgency=Urgency.NORMAL,
        category=Category.NEIGHBOR, channel="12345", overdue=False, needs_review=False, external_ref=None,
        received_at=T0, due=None, rule=None, excerpt="邻居噪音")
    values.update(fields)
    return QueueEntry(**values)


def routed_case(**fields: Any) -> Case:
    values: dict[str, Any] = dict(id="GT-1", channel="12345", text="  楼上邻居\n每晚噪音" + "很" * 100,
                                  received_at=T0, status=S.ROUTED, unit=Unit.MEDIATION, version=3,
                                  urgency=Urgency.HIGH, category=Category.NEIGHBOR)
    values.update(fields)
    return Case(**values)


def deadline(rule: str, due: str, met: bool = False) -> OpenDeadline:
    return OpenDeadline(rule=rule, start="2026-03-02", due=due, source="test", opened_at=T0,
                        met_at=T0 if met else None)


# --- the entry ---------------------------------------------------------------------------------------


def test_the_entry_names_the_nearest_open_deadline() -> None:
    case = routed_case(deadlines={"a_far": deadline("a.far", "2026-03-20"),
                                  "b_near_met": deadline("b.near", "2026-03-03", met=True),
                                  "c_near": deadline("c.near", "2026-03-10")})
    e = entry_of(case)
    assert e is not None
    assert (e.case_id, e.version, e.unit, e.due, e.rule) == ("GT-1", 3, Unit.MEDIATION, date(2026, 3, 10), "c.near")
    assert e.excerpt.startswith("楼上邻居 每晚噪音") and len(e.excerpt) == 60


def test_no_entry_without_a_unit_or_once_closed() -> None:
    assert entry_of(routed_case(unit=None, status=S.CLASSIFIED)) is None
    assert entry_of(routed_case(status=S.CLOSED)) is None
    assert entry_of(routed_case(status=S.RESOLVED)) is not None


def test_an_entry_without_deadlines_has_no_due_and_a_naive_time_is_utc() -> None:
    e = entry_of(routed_case(received_at=datetime(2026, 3, 2, 9, 0)))
    assert e is not None and e.due is None and e.rule is None and e.received_at == T0


# --- the order ---------------------------------------------------------------------------------------


def test_nearest_due_first_then_most_urgent_then_oldest_then_id() -> None:
    entries = [
        entry("none-due", due=None, urgency=Urgency.CRITICAL),
        entry("late-due", due=date(2026, 3, 20)),
        entry("soon-normal", due=date(2026, 3, 5), urgency=Urgency.NORMAL),
        entry("soon-critical", due=date(2026, 3, 5), urgency=Urgency.CRITICAL),
        entry("soon-no-urgency", due=date(2026, 3, 5), urgency=None),
        entry("soon-normal-older", due=date(2026, 3, 5), received_at=T0 - timedelta(hours=1)),
        entry("soon-normal-b", due=date(2026, 3, 5), received_at=T0 - timedelta(hours=1)),
    ]
    assert [e.case_id for e in sorted(entries, key=queue_order)] == [
        "soon-critical", "soon-normal-b", "soon-normal-older", "soon-normal", "soon-no-urgency", "late-due",
        "none-due"]


# --- the filter --------------------------------------------------------------------------------------


def test_the_default_filter_lets_every_open_entry_through() -> None:
    f = QueueFilter()
    assert f.statuses == OPEN_STATUSES
    assert all(f.matches(entry("x", status=s)) for s in OPEN_STATUSES)


def test_each_criterion_narrows() -> None:
    e = entry("GT-20260302-0042", urgency=Urgency.HIGH, overdue=True, channel="wechat", needs_review=True,
              external_ref="WX-778")
    assert QueueFilter(urgency=Urgency.HIGH, overdue=True, category=Category.NEIGHBOR, channel="wechat",
                       needs_review=True).matches(e)
    for miss in (QueueFilter(statuses=frozenset({S.ACCEPTED})), QueueFilter(urgency=Urgency.LOW),
                 QueueFilter(overdue=False), QueueFilter(category=Category.LABOR), QueueFilter(channel="12345"),
                 QueueFilter(needs_review=False), QueueFilter(search="GT-2027")):
        assert not miss.matches(e), miss


@pytest.mark.parametrize("search", ["GT-20260302-0042", "gt-20260302-0042", "GT-20260302", "wx-7", " WX-778 ", ""])
def test_search_finds_by_id_or_external_reference_whole_or_its_beginning(search: str) -> None:
    assert QueueFilter(search=search).matches(entry("GT-20260302-0042", external_ref="WX-778"))


def test_search_does_not_match_the_middle() -> None:
    assert not QueueFilter(search="0302").matches(entry("GT-20260302-0042", external_ref="WX-778"))


# --- the page ----------------------------------------------------------------------------------------


def many() -> list[QueueEntry]:
    statuses = [S.ROUTED, S.ACCEPTED, S.IN_PROGRESS]
    return [entry(f"GT-{n:03d}", due=date(2026, 3, 2) + timedelta(days=n), status=statuses[n % 3],
                  channel="wechat" if n % 2 else "12345") for n in range(25)]


def test_a_page_is_cut_from_the_ordered_filtered_entries() -> None:
    page = queue_page(reversed(many()), QueueFilter(), page=2, page_size=10)
    assert [e.case_id for e in page.entries] == [f"GT-{n:03d}" for n in range(10, 20)]
    assert (page.total, page.page, page.pages, page.page_size) == (25, 2, 3, 10)


@pytest.mark.parametrize(("asked", "given"), [(0, 1), (-5, 1), (3, 3), (4, 3), (99, 3)])
def test_a_page_past_either_end_is_clamped(asked: int, given: int) -> None:
    page = queue_page(many(), QueueFilter(), page=asked, page_size=10)
    assert page.page == given and page.entries


def test_an_empty_queue_has_one_empty_page() -> None:
    page = queue_page([], QueueFilter(), page=3, page_size=50)
    assert (page.entries, page.total, page.page, page.pages) == ([], 0, 1, 1)
    assert page.counts == dict.fromkeys(OPEN_STATUSES, 0)


def test_counts_are_per_status_over_every_criterion_but_the_statuses() -> None:
    page = queue_page(many(), QueueFilter(statuses=frozenset({S.ACCEPTED}), channel="wechat"), 1, 50)
    wechat = [n for n in range(25) if n % 2]
    assert page.total == len([n for n in wechat if n % 3 == 1])
    assert page.counts[S.ROUTED] == len([n for n in wechat if n % 3 == 0])
    assert page.counts[S.ACCEPTED] == page.total
    assert page.counts[S.IN_PROGRESS] == len([n for n in wechat if n % 3 == 2])
    assert page.counts[S.RETURNED] == 0 and S.CLOSED not in page.counts
    assert all(e.status is S.ACCEPTED and e.channel == "wechat" for e in page.entries)


def test_a_page_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        queue_page(many(), QueueFilter(), 1, 0)


# --- the countdown -----------------------------------------------------------------------------------

CAL = default_calendar()
FRIDAY = date(2026, 3, 6)
MONDAY = date(2026, 3, 9)


def test_no_due_no_countdown() -> None:
    c = countdown(None, FRIDAY, CAL)
    assert (c.colour, c.working_days_left, c.label) == (Colour.NONE, None, "无时限")


def test_due_today_is_amber() -> None:
    c = countdown(FRIDAY, FRIDAY, CAL)
    assert (c.colour, c.working_days_left, c.label) == (Colour.AMBER, 0, "今日到期")


def test_the_weekend_is_not_counted() -> None:
    c = countdown(MONDAY, FRIDAY, CAL)
    assert (c.colour, c.working_days_left, c.label) == (Colour.AMBER, 1, "剩 1 个工作日")
    c = countdown(MONDAY + timedelta(days=2), FRIDAY, CAL)  # Wednesday
    assert (c.colour, c.working_days_left, c.label) == (Colour.GREEN, 3, "剩 3 个工作日")


def test_a_holiday_is_not_counted() -> None:
    # Qingming 2026: Saturday 4 April to Monday 6 April off; Friday 3 April to Tuesday 7 April is one working day.
    c = countdown(date(2026, 4, 7), date(2026, 4, 3), CAL)
    assert (c.colour, c.working_days_left) == (Colour.AMBER, 1)
    c = countdown(date(2026, 4, 9), date(2026, 4, 3), CAL)
    assert (c.colour, c.working_days_left) == (Colour.GREEN, 3)


def test_overdue_counts_working_days_since_the_due_day() -> None:
    c = countdown(FRIDAY, MONDAY + timedelta(days=1), CAL)  # Friday's limit, Tuesday: Monday and Tuesday late
    assert (c.colour, c.working_days_left, c.label) == (Colour.RED, -2, "超期 2 个工作日")
    c = countdown(date(2026, 4, 3), date(2026, 4, 6), CAL)  # over the Qingming weekend: no working day yet
    assert (c.colour, c.working_days_left, c.label) == (Colour.RED, 0, "已超期")
