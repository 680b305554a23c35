"""The follow-up service as deployed (services/followup/main.py), on FastStream's test broker and the memory
storage: routed cases get their timers, desk actions move the case (or are refused, on the record), and the
timer scan reminds, marks overdue and escalates to the command centre."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pytest
from faststream.kafka import KafkaBroker

from services.followup import handlers, main, timers
from services.routing.handlers import route_case
from shared import topics
from shared.adapters.memory import MemoryActionLog, MemoryStorage, MemoryTimerBook
from shared.domain.case import Case
from shared.domain.followup import TimerSpec
from shared.domain.lifecycle import Action, CaseStatus, Satisfaction
from shared.domain.routing import load_policy
from shared.domain.triage import Assessment, Category, Unit, Urgency
from shared.domain.workdays import CHINA_TZ, default_calendar
from shared.events import (
    AlertKind,
    CaseAlert,
    CaseClassified,
    CaseClassifiedPayload,
    CaseRouted,
    Channel,
    ChannelEvent,
    DeskAction,
    DeskActionPayload,
    Envelope,
    case_id_for,
)
from shared.metrics import REGISTRY, TIMER_SCAN_LAST_SUCCESS

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # a Monday, 17:00 in China
TEXT = "镇政府窗口工作人员办事推诿，材料交了三次还说不齐，一拖再拖，要求给个说法。"
CASE_ID = case_id_for("12345", "ev-1")
ADMIN = Assessment(category=Category.ADMIN_COMPLAINT, urgency=Urgency.NORMAL, confidence=0.82)
# routed to the visitor centre on 2026-11-30: visitor.accept is due 2026-12-15, hotline.complaint 2026-12-21
ACCEPT_TIMERS = {"2026-12-14": "remind", "2026-12-16": "overdue", "2026-12-17": "escalate"}
HOTLINE_TIMERS = {"2026-12-18": "remind", "2026-12-22": "overdue", "2026-12-23": "escalate"}


def local(year: int, month: int, day: int, hour: int) -> datetime:
    return datetime(year, month, day, hour, tzinfo=CHINA_TZ)


@pytest.fixture
def storage(monkeypatch: pytest.MonkeyPatch) -> MemoryStorage:
    """The service's storage and the deps built from it, swapped for memory; its clock fixed."""
    memory = MemoryStorage()
    monkeypatch.setattr(main.service, "storage", memory)
    monkeypatch.setattr(main, "deps", handlers.FollowUp(storage=memory, publish=main.publish,
                                                        max_bytes=main.service.settings.max_event_bytes,
                                                        calendar=default_calendar()))
    monkeypatch.setattr(main, "utcnow", lambda: NOW)
    return memory


async def routed_case(storage: MemoryStorage, channel: Channel = Channel.HOTLINE_12345) -> CaseRouted:
    """A complaint received, classified and routed to the visitor centre (by the routing handler)."""
    event = ChannelEvent(event_id="ev-1", channel=channel, occurred_at=NOW, text=TEXT)
    case_id = case_id_for(channel, "ev-1")
    case, change = Case.receive(event, case_id=case_id, text=TEXT, complainant_key=None, now=NOW)
    await storage.cases.add(case, change)
    classified = CaseClassified(event_id=f"{channel.value}:ev-1.received.classified", case_id=case_id,
                                source_channel=channel, payload=CaseClassifiedPayload(assessment=ADMIN))
    published: list[Envelope] = []

    async def publish(e: Envelope) -> None:
        published.append(e)

    await route_case(classified.model_dump_json().encode(), cases=storage.cases, publish=publish,
                     policy=load_policy(), calendar=default_calendar(), max_bytes=100_000, now=NOW)
    [routed] = published
    assert isinstance(routed, CaseRouted) and routed.payload.unit is Unit.VISITOR
    return routed


async def routed_and_timed(broker: KafkaBroker, storage: MemoryStorage,
                           channel: Channel = Channel.HOTLINE_12345) -> CaseRouted:
    routed = await routed_case(storage, channel)
    await broker.publish(routed.model_dump_json().encode(), topics.CASE_ROUTED)
    return routed


async def act(broker: KafkaBroker, event_id: str, action: Action, unit: Unit = Unit.VISITOR, case_id: str = CASE_ID,
              **payload: Any) -> None:
    event = DeskAction(event_id=event_id, case_id=case_id, source_channel=Channel.HOTLINE_12345,
                       payload=DeskActionPayload(unit=unit, action=action, actor="desk-wang", **payload))
    await broker.publish(event.model_dump_json().encode(), topics.DESK_ACTIONS)


def case(storage: MemoryStorage, case_id: str = CASE_ID) -> Case:
    return storage.cases.stored[case_id]


def filed(storage: MemoryStorage, rule: str) -> dict[str, str]:
    """The day each timer of a deadline is filed under, by kind."""
    return {day: t.kind.value for day, by_id in storage.timers.filed.items() for t in by_id.values()
            if t.rule == rule}


def alerts() -> list[CaseAlert]:
    return [CaseAlert.model_validate(c.args[0]) for c in main.alerts.mock.call_args_list]


def nothing_published() -> bool:
    return not (main.alerts.mock.called or main.reclassified.mock.called
                or any(d.mock.called for d in main.desks.values()))


async def test_a_routed_case_gets_the_timers_of_its_deadlines(broker: KafkaBroker, storage: MemoryStorage) -> None:
    await routed_and_timed(broker, storage)

    assert filed(storage, "visitor.accept") == ACCEPT_TIMERS
    assert filed(storage, "hotline.complaint") == HOTLINE_TIMERS
    remind = next(iter(storage.timers.filed["2026-12-14"].values()))
    assert (remind.case_id, remind.due, remind.due_at) == (CASE_ID, "2026-12-15", local(2026, 12, 14, 9))
    assert await storage.timers.cursor() == "2026-12-14"
    assert nothing_published()


async def test_accept_resolve_and_a_satisfied_return_visit_close_the_case(
        broker: KafkaBroker, storage: MemoryStorage) -> None:
    await routed_and_timed(broker, storage)

    await act(broker, "act-1", Action.ACCEPT)
    assert (case(storage).status, case(storage).accepted_at) == (CaseStatus.ACCEPTED, NOW)
    assert case(storage).deadlines["visitor_accept"].met_at == NOW
    assert case(storage).deadlines["visitor_resolve"].due == "2027-01-29"  # 60 calendar days
    assert filed(storage, "visitor.resolve") == {"2027-01-28": "remind", "2027-01-30": "overdue",
                                                 "2027-02-02": "escalate"}
    record = await storage.actions.get("act-1")
    assert record is not None
    assert (record["outcome"], record["before"], record["after"]) == ("applied", "routed", "accepted")

    await act(broker, "act-2", Action.RESOLVE, note="已协调窗口重新受理，材料一次办结")
    assert case(storage).status is CaseStatus.RESOLVED
    assert all(d.met_at == NOW for d in case(storage).deadlines.values())

    await act(broker, "act-3", Action.RETURN_VISIT, satisfaction=Satisfaction.SATISFIED)
    closed = case(storage)
    assert (closed.status, closed.closed_at, closed.satisfaction) == (CaseStatus.CLOSED, NOW, Satisfaction.SATISFIED)
    assert closed.timeline_ids[-3:] == ["action:act-1", "action:act-2", "action:act-3"]
    timeline = await storage.cases.timeline(CASE_ID)
    assert [(e.kind, e.detail.get("after")) for e in timeline if e.id.startswith("action:")] == [
        ("accept", "accepted"), ("resolve", "resolved"), ("return_visit", "closed")]
    assert nothing_published()

    # every limit was met: its timers, when they fall due, no longer bite
    assert await timers.fire_due_timers(main.deps, local(2027, 3, 1, 9), NOW, "test", 60) == 0
    assert case(storage) == closed and nothing_published()


async def test_a_dissatisfied_return_visit_reopens_the_case(broker: KafkaBroker, storage: MemoryStorage) -> None:
    await routed_and_timed(broker, storage)
    await act(broker, "act-1", Action.ACCEPT)
    await act(broker, "act-2", Action.RESOLVE, note="已答复来访人")

    await act(broker, "act-3", Action.RETURN_VISIT, satisfaction=Satisfaction.DISSATISFIED)
    reopened = case(storage)
    assert (reopened.status, reopened.reopen_count, reopened.closed_at) == (CaseStatus.REOPENED, 1, None)
    assert (await storage.cases.timeline(CASE_ID))[-1].detail["satisfaction"] == "dissatisfied"

    await act(broker, "act-4", Action.ACCEPT)  # the desk works the case again
    assert case(storage).status is CaseStatus.ACCEPTED


async def test_a_hand_back_asks_for_a_routing_without_that_unit(broker: KafkaBroker, storage: MemoryStorage) -> None:
    routed = await routed_and_timed(broker, storage)

    await act(broker, "act-hb", Action.HAND_BACK, reason="属于行政审批事项，应由指挥中心派单")
    returned = case(storage)
    assert (returned.status, returned.excluded_units) == (CaseStatus.RETURNED, [Unit.VISITOR])
    assert returned.deadlines["visitor_accept"].met_at == NOW  # the unit's own limit ends with it
    assert returned.deadlines["hotline_complaint"].is_open  # the citizen's 12345 clock keeps running
    [reroute] = [CaseClassified.model_validate(c.args[0]) for c in main.reclassified.mock.call_args_list]
    assert (reroute.event_id, reroute.case_id) == ("act-hb.reroute", CASE_ID)
    assert reroute.payload.assessment == ADMIN
    assert (reroute.payload.routing_attempt, reroute.payload.excluded_units) == (routed.payload.routing_attempt + 1,
                                                                                  [Unit.VISITOR])
    assert reroute.payload.handback_reason == "属于行政审批事项，应由指挥中心派单"

    await act(broker, "act-hb", Action.HAND_BACK, reason="属于行政审批事项，应由指挥中心派单")  # redelivered
    assert case(storage) == returned
    assert [c.args[0]["event_id"] for c in main.reclassified.mock.call_args_list] == ["act-hb.reroute"] * 2


async def test_a_desk_escalates_to_the_command_centre(broker: KafkaBroker, storage: MemoryStorage) -> None:
    await routed_and_timed(broker, storage)

    await act(broker, "act-esc", Action.ESCALATE, note="涉及多个部门，本中心无法协调")
    escalated = case(storage)
    assert (escalated.status, escalated.unit, escalated.escalated_from) == (
        CaseStatus.ESCALATED, Unit.COMMAND, Unit.VISITOR)
    [to_command] = [CaseRouted.model_validate(c.args[0]) for c in main.desks[Unit.COMMAND].mock.call_args_list]
    assert (to_command.event_id, to_command.payload.decision.override) == ("act-esc.escalated", "desk_escalation")

    await act(broker, "act-cmd", Action.ACCEPT, unit=Unit.COMMAND)
    assert case(storage).status is CaseStatus.ACCEPTED
    assert case(storage).deadlines["visitor_accept"].met_at == NOW


async def test_a_refused_action_is_recorded_with_its_reason(broker: KafkaBroker, storage: MemoryStorage) -> None:
    await routed_and_timed(broker, storage)
    before = case(storage).model_copy(deep=True)

    await act(broker, "act-early", Action.RESOLVE, note="已答复")

    record = await storage.actions.get("act-early")
    assert record is not None and record["outcome"] == "rejected"
    assert "cannot resolve a case that is routed" in record["reason"]
    refused = case(storage)
    assert refused.status is CaseStatus.ROUTED and refused.resolved_at is None
    assert refused.timeline_ids == [*before.timeline_ids, "refused:act-early"]
    entry = (await storage.cases.timeline(CASE_ID))[-1]
    assert (entry.kind, entry.detail["action"], entry.detail["reason"]) == (
        "action_rejected", "resolve", record["reason"])

    await act(broker, "act-police", Action.ACCEPT, unit=Unit.POLICE)  # not the unit the case is with
    police = await storage.actions.get("act-police")
    assert police is not None and police["outcome"] == "rejected"
    assert police["reason"] == "the case is with visitor, not police"
    assert case(storage).status is CaseStatus.ROUTED and nothing_published()


async def test_a_redelivered_action_changes_nothing(broker: KafkaBroker, storage: MemoryStorage) -> None:
    await routed_and_timed(broker, storage)
    await act(broker, "act-early", Action.RESOLVE, note="已答复")  # refused: the case is not accepted yet
    await act(broker, "act-1", Action.ACCEPT)
    accepted = case(storage).model_copy(deep=True)
    records = dict(storage.actions.stored)
    timers_filed = {day: dict(by_id) for day, by_id in storage.timers.filed.items()}

    await act(broker, "act-1", Action.ACCEPT)
    await act(broker, "act-early", Action.RESOLVE, note="已答复")  # allowed now, but it was decided once: refused

    assert case(storage) == accepted  # same status, version and timeline
    assert accepted.status is CaseStatus.ACCEPTED and accepted.resolved_at is None
    assert len(await storage.cases.timeline(CASE_ID)) == len(accepted.timeline_ids)
    assert storage.actions.stored == records
    assert [records[i]["outcome"] for i in ("act-early", "act-1")] == ["rejected", "applied"]
    assert storage.timers.filed == timers_filed
    assert nothing_published()


async def test_an_extension_moves_the_timers_with_the_due_date(broker: KafkaBroker, storage: MemoryStorage) -> None:
    walk_in = (await routed_and_timed(broker, storage, Channel.WALK_IN)).case_id  # no 12345 limit beside it
    await act(broker, "act-1", Action.ACCEPT, case_id=walk_in)
    await act(broker, "act-2", Action.REQUEST_EXTENSION, case_id=walk_in, reason="涉及多个部门，需要会商",
              extension_days=30)

    extended = case(storage, walk_in).deadlines["visitor_resolve"]
    # 2027-01-29 + 30 days is Sunday 2027-02-28: the period ends on the next working day (民法典 art. 203)
    assert (extended.due, extended.extended_by) == ("2027-03-01", "visitor.extension")
    assert case(storage, walk_in).extension_used
    assert {t.due for by_id in storage.timers.filed.values() for t in by_id.values()
            if t.rule == "visitor.resolve"} == {"2027-01-29", "2027-03-01"}

    # the first due date passes: its timers no longer apply
    assert await timers.fire_due_timers(main.deps, local(2027, 1, 30, 1), NOW, "test", 60) == 0
    assert not case(storage, walk_in).overdue and nothing_published()
    # the extended one passes unresolved: overdue
    assert await timers.fire_due_timers(main.deps, local(2027, 3, 2, 1), NOW, "test", 60) == 2
    assert case(storage, walk_in).overdue_rules == ["visitor.resolve"]
    assert [(a.payload.kind, a.payload.due) for a in alerts()] == [(AlertKind.REMINDER, "2027-03-01"),
                                                                   (AlertKind.OVERDUE, "2027-03-01")]


async def test_timers_remind_mark_overdue_and_escalate_to_the_command_centre(
        broker: KafkaBroker, storage: MemoryStorage) -> None:
    await routed_and_timed(broker, storage)

    # 2026-12-16 01:00: the visitor centre's 15 days to accept ended at 24:00 on the 15th
    overdue_at = local(2026, 12, 16, 1)
    assert await timers.fire_due_timers(main.deps, overdue_at, NOW, "test", 60) == 2
    overdue = case(storage)
    assert (overdue.status, overdue.overdue, overdue.overdue_since) == (CaseStatus.ROUTED, True, overdue_at)
    assert overdue.overdue_rules == ["visitor.accept"]
    fired = [i for i in overdue.timeline_ids if i.startswith("timer:")]
    assert fired == [f"timer:{CASE_ID}:visitor.accept:2026-12-15:remind",
                     f"timer:{CASE_ID}:visitor.accept:2026-12-15:overdue"]
    assert [(a.payload.kind, a.payload.unit, a.payload.rule, a.payload.due) for a in alerts()] == [
        (AlertKind.REMINDER, Unit.VISITOR, "visitor.accept", "2026-12-15"),
        (AlertKind.OVERDUE, Unit.VISITOR, "visitor.accept", "2026-12-15")]
    assert not any(d.mock.called for d in main.desks.values())
    assert await timers.fire_due_timers(main.deps, overdue_at, NOW, "test", 60) == 0  # fired once

    # 2026-12-17 10:00: two working days past the due date, still not accepted
    assert await timers.fire_due_timers(main.deps, local(2026, 12, 17, 10), NOW, "test", 60) == 1
    escalated = case(storage)
    assert (escalated.status, escalated.unit, escalated.escalated_from) == (
        CaseStatus.ESCALATED, Unit.COMMAND, Unit.VISITOR)
    assert escalated.timeline_ids[-1] == f"timer:{CASE_ID}:visitor.accept:2026-12-15:escalate"
    assert alerts()[-1].payload.kind is AlertKind.ESCALATED
    [to_command] = [CaseRouted.model_validate(c.args[0]) for c in main.desks[Unit.COMMAND].mock.call_args_list]
    assert (to_command.case_id, to_command.payload.unit) == (CASE_ID, Unit.COMMAND)
    assert (to_command.payload.decision.override, to_command.payload.urgency) == ("overdue_escalation", Urgency.HIGH)
    assert not main.desks[Unit.VISITOR].mock.called
    # the 12345 limit is not due yet: its timers wait
    assert filed(storage, "hotline.complaint") == HOTLINE_TIMERS
    assert not any(t.rule == "hotline.complaint" for t in await storage.timers.unfinished_on("2026-12-14"))
    assert {t.kind.value for t in await storage.timers.unfinished_on("2026-12-18")} == {"remind"}


class FlakyActionLog(MemoryActionLog):
    """Fails the first record with an outage: the service retries the whole event."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    async def record(self, action_id: str, record: Mapping[str, Any]) -> Mapping[str, Any]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("store unreachable")
        return await super().record(action_id, record)


async def test_a_refusal_stays_a_refusal_when_its_record_is_retried(
        broker: KafkaBroker, storage: MemoryStorage) -> None:
    await routed_and_timed(broker, storage)
    storage.actions = FlakyActionLog()

    await act(broker, "act-esc", Action.ESCALATE, unit=Unit.POLICE)  # the case is with the visitor centre

    record = await storage.actions.get("act-esc")
    assert record is not None and record["outcome"] == "rejected"
    assert record["reason"] == "the case is with visitor, not police"
    assert case(storage).status is CaseStatus.ROUTED and case(storage).unit is Unit.VISITOR
    assert nothing_published()  # no escalation reached the command centre

    storage.actions.failures = 1
    await act(broker, "act-1", Action.ACCEPT)  # applied, then its record fails: the retry records what it did
    accepted = await storage.actions.get("act-1")
    assert accepted is not None
    assert (accepted["outcome"], accepted["before"], accepted["after"]) == ("applied", "routed", "accepted")


class FlakyTimerBook(MemoryTimerBook):
    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    async def schedule(self, timers: Sequence[TimerSpec], today: date) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("store unreachable")
        await super().schedule(timers, today)


async def test_the_limits_an_action_opens_are_timed_when_filing_is_retried(
        broker: KafkaBroker, storage: MemoryStorage) -> None:
    storage.timers = flaky = FlakyTimerBook()
    await routed_and_timed(broker, storage)
    flaky.failures = 1

    await act(broker, "act-1", Action.ACCEPT)

    assert case(storage).deadlines["visitor_resolve"].due == "2027-01-29"
    assert filed(storage, "visitor.resolve") == {"2027-01-28": "remind", "2027-01-30": "overdue",
                                                 "2027-02-02": "escalate"}


async def test_the_scanner_stamps_every_scan_that_finished_and_no_failed_one(
        storage: MemoryStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    """The alert on a stalled scanner reads this stamp: a failing scan must leave it where it was."""
    monkeypatch.setattr(main.service, "settings", main.service.settings.model_copy(update={"timer_scan_seconds": 0.01}))
    outcomes: list[Exception | int] = [ValueError("a bad timer"), 0]
    stamps: list[float | None] = []
    finished = asyncio.Event()

    async def scan() -> int:
        stamps.append(REGISTRY.get_sample_value("triage_timer_scan_last_success_timestamp_seconds"))
        if not outcomes:
            finished.set()
            return 0
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(main, "_scan_once", scan)
    TIMER_SCAN_LAST_SUCCESS.set(0)
    before = time.time()
    scanner = asyncio.create_task(main.scan_timers_forever())
    await asyncio.wait_for(finished.wait(), 5)
    scanner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await scanner

    assert stamps[:2] == [0, 0]  # the failed scan left the stamp alone
    assert before <= (stamps[2] or 0) <= time.time()  # the next one, which finished, stamped it
