"""The routing service as deployed (services/routing/main.py), on FastStream's test broker and the memory
storage: case-classified in, the case routed in the store, case-routed out on the desk's queue and the
routed topic with the deadlines it opened."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from faststream.kafka import KafkaBroker

from services.routing import main
from shared import topics
from shared.adapters.memory import MemoryStorage
from shared.domain.case import Case
from shared.domain.lifecycle import CaseStatus
from shared.domain.triage import Assessment, Category, Unit, Urgency
from shared.domain.workdays import default_calendar
from shared.events import (
    CaseClassified,
    CaseClassifiedPayload,
    CaseRouted,
    Channel,
    ChannelEvent,
    case_id_for,
)

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # a Monday, 17:00 in China
LATER = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
TEXT = "镇政府窗口工作人员办事推诿，材料交了三次还说不齐，一拖再拖，要求给个说法。"
CASE_ID = case_id_for("12345", "ev-1")
ADMIN = Assessment(category=Category.ADMIN_COMPLAINT, urgency=Urgency.NORMAL, confidence=0.82)
# A 12345 complaint routed to the visitor centre on 2026-11-30: 15 calendar days to accept (信访工作条例),
# 15 working days to answer (12345 rules; no holiday in December 2026).
DEADLINES = [
    {"rule": "visitor.accept", "start": "2026-11-30", "due": "2026-12-15", "source": "信访工作条例 (2022) art. 22"},
    {"rule": "hotline.complaint", "start": "2026-11-30", "due": "2026-12-21", "source": "local 12345 rules"},
]


async def received_case(storage: MemoryStorage, channel: Channel = Channel.HOTLINE_12345) -> Case:
    event = ChannelEvent(event_id="ev-1", channel=channel, occurred_at=NOW, text=TEXT)
    case, change = Case.receive(event, case_id=case_id_for(channel, "ev-1"), text=TEXT, complainant_key=None, now=NOW)
    await storage.cases.add(case, change)
    return case


def case_classified(case_id: str = CASE_ID, assessment: Assessment = ADMIN, **payload: Any) -> bytes:
    event = CaseClassified(event_id="12345:ev-1.received.classified", case_id=case_id,
                           source_channel=Channel.HOTLINE_12345,
                           payload=CaseClassifiedPayload(assessment=assessment, **payload))
    return event.model_dump_json().encode()


@pytest.fixture
def storage(monkeypatch: pytest.MonkeyPatch) -> MemoryStorage:
    memory = MemoryStorage()
    monkeypatch.setattr(main.service, "storage", memory)
    monkeypatch.setattr(main, "calendar", default_calendar())
    monkeypatch.setattr(main, "utcnow", lambda: NOW)
    return memory


def published(unit: Unit | None = None) -> list[CaseRouted]:
    """The case-routed events on a desk's queue, or (no unit) on the routed topic."""
    publisher = main.routed if unit is None else main.desks[unit]
    return [CaseRouted.model_validate(call.args[0]) for call in publisher.mock.call_args_list]


async def test_a_classified_case_is_routed_and_its_deadlines_opened(
        broker: KafkaBroker, storage: MemoryStorage) -> None:
    await received_case(storage)
    await broker.publish(case_classified(), topics.CASE_CLASSIFIED)

    case = storage.cases.stored[CASE_ID]
    assert (case.status, case.unit, case.version) == (CaseStatus.ROUTED, Unit.VISITOR, 1)
    assert (case.category, case.assessment, case.routed_at, case.routing_attempt) == (
        Category.ADMIN_COMPLAINT, ADMIN, NOW, 0)
    assert case.routings["0"].unit is Unit.VISITOR and case.routing == case.routings["0"]
    assert {k: (d.rule, d.start, d.due, d.met_at) for k, d in case.deadlines.items()} == {
        "visitor_accept": ("visitor.accept", "2026-11-30", "2026-12-15", None),
        "hotline_complaint": ("hotline.complaint", "2026-11-30", "2026-12-21", None),
    }
    assert case.timeline_ids == ["received:12345:ev-1", "classified:12345:ev-1.received.classified", "routed:0",
                                 "deadline:visitor.accept:2026-12-15", "deadline:hotline.complaint:2026-12-21"]
    assert [e.id for e in await storage.cases.timeline(CASE_ID)] == case.timeline_ids

    [to_desk] = published(Unit.VISITOR)
    [routed] = published()
    assert to_desk == routed  # one event, on the desk's queue and the routed topic
    assert routed.event_id == "12345:ev-1.received.classified.routed0" and routed.case_id == CASE_ID
    assert (routed.payload.unit, routed.payload.category, routed.payload.text) == (
        Unit.VISITOR, Category.ADMIN_COMPLAINT, TEXT)
    assert [d.model_dump() for d in routed.payload.deadlines] == DEADLINES
    assert all(not published(u) for u in Unit if u is not Unit.VISITOR)
    assert not storage.dead_letters.stored


async def test_a_replay_publishes_the_same_events_and_changes_nothing(
        broker: KafkaBroker, storage: MemoryStorage) -> None:
    await received_case(storage)
    await broker.publish(case_classified(), topics.CASE_CLASSIFIED)
    first = storage.cases.stored[CASE_ID].model_copy(deep=True)

    await broker.publish(case_classified(), topics.CASE_CLASSIFIED)

    assert storage.cases.stored[CASE_ID] == first
    assert len(await storage.cases.timeline(CASE_ID)) == len(first.timeline_ids)
    once, again = published()
    assert once.event_id == again.event_id
    assert once.model_dump(exclude={"occurred_at"}) == again.model_dump(exclude={"occurred_at"})
    assert [e.event_id for e in published(Unit.VISITOR)] == [once.event_id] * 2


async def test_a_case_from_another_channel_opens_no_hotline_deadline(
        broker: KafkaBroker, storage: MemoryStorage) -> None:
    case = await received_case(storage, Channel.WALK_IN)
    await broker.publish(case_classified(case.id), topics.CASE_CLASSIFIED)

    routed = storage.cases.stored[case.id]
    assert routed.status is CaseStatus.ROUTED and list(routed.deadlines) == ["visitor_accept"]
    [event] = published()
    assert [d.rule for d in event.payload.deadlines] == ["visitor.accept"]


async def test_a_case_handed_back_is_routed_again_without_that_unit(
        broker: KafkaBroker, storage: MemoryStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    await received_case(storage)
    await broker.publish(case_classified(), topics.CASE_CLASSIFIED)
    case = storage.cases.stored[CASE_ID]
    case.status, case.excluded_units = CaseStatus.RETURNED, [Unit.VISITOR]  # as the follow-up leaves it
    monkeypatch.setattr(main, "utcnow", lambda: LATER)

    await broker.publish(case_classified(routing_attempt=1, excluded_units=[Unit.VISITOR], handback_reason="不归我们管"),
                         topics.CASE_CLASSIFIED)

    case = storage.cases.stored[CASE_ID]
    assert (case.status, case.unit, case.routing_attempt, case.routed_at) == (CaseStatus.ROUTED, Unit.COMMAND, 1, LATER)
    assert (case.routings["0"].unit, case.routings["1"].unit) == (Unit.VISITOR, Unit.COMMAND)
    assert case.timeline_ids[-1] == "routed:1"
    assert set(case.deadlines) == {"visitor_accept", "hotline_complaint"}  # the 12345 clock keeps running
    [retry] = published(Unit.COMMAND)
    assert retry.payload.routing_attempt == 1 and retry.event_id.endswith(".routed1")
    assert retry.payload.deadlines == []  # nothing new opened: the follow-up times what it timed before


async def test_an_unknown_case_is_dead_lettered(broker: KafkaBroker, storage: MemoryStorage) -> None:
    await broker.publish(case_classified("GT-NOSUCHCASE"), topics.CASE_CLASSIFIED)

    [letter] = storage.dead_letters.stored.values()
    assert (letter["service"], letter["reason"]) == ("routing", "unknown_case")
    assert "GT-NOSUCHCASE" in letter["detail"]
    await main.service.dead_letters.assert_called_once_with(headers={"x-dlq-reason": "unknown_case"})
    assert not published() and not storage.cases.stored
