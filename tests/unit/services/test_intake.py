"""The intake service as deployed (services/intake/main.py), on FastStream's test broker and the memory
storage: channel events in, cases in the store and case-received events out."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.core.bindings import kafka
from cloudevents.core.v1.event import CloudEvent
from faststream.kafka import KafkaBroker

from services.intake import main
from shared import topics
from shared.adapters.memory import MemoryStorage
from shared.cloudevents import TYPE, event_id_of
from shared.domain.case import Case
from shared.domain.lifecycle import CaseStatus
from shared.domain.triage import RiskFlag
from shared.events import case_id_for, derive_event_id

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
PHONE = "13812345678"
LEAK = "我家楼上的住户家里水管漏水，已经漏了一个星期，我家天花板都泡坏了，找他们协商也不理，请帮忙处理。"
LEAK_AGAIN = "楼上住户家里水管漏水一个多星期了，我家天花板泡坏了，协商也不理，上次反映过还没人处理，请尽快处理。"
TWO_MATTERS = ("我借给同村的张某五万元，约定今年六月还款，到期后多次催要他一直不还，希望帮忙调解。"
               "另外，我家门口的路灯坏了一个多月了，晚上出行很不方便，请尽快安排维修。")


def channel_event(event_id: str, text: str, phone: str | None = PHONE) -> dict[str, Any]:
    return {"event_id": event_id, "channel": "12345", "occurred_at": "2026-11-30T16:30:00+08:00", "text": text,
            **({"complainant": {"name": "王某", "phone": phone}} if phone else {})}


def body(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode()


@pytest.fixture
def storage(monkeypatch: pytest.MonkeyPatch) -> MemoryStorage:
    """The service's storage and the deps built from it, swapped for memory; its clock fixed."""
    memory = MemoryStorage()
    monkeypatch.setattr(main.service, "storage", memory)
    monkeypatch.setattr(main, "deps", dataclasses.replace(main.deps, storage=memory))
    monkeypatch.setattr(main, "utcnow", lambda: NOW)
    return memory


def received() -> list[dict[str, Any]]:
    """The case-received events published, as they went on the wire."""
    return [call.args[0] for call in main.received.mock.call_args_list]


def only_case(storage: MemoryStorage) -> Case:
    assert len(storage.cases.stored) == 1, list(storage.cases.stored)
    return next(iter(storage.cases.stored.values()))


async def test_a_new_complaint_opens_a_case_and_announces_it(broker: KafkaBroker, storage: MemoryStorage) -> None:
    await broker.publish(body(channel_event("ev-1", LEAK)), topics.CHANNEL_EVENTS)

    case = only_case(storage)
    assert case.id == case_id_for("12345", "ev-1")
    assert case.status is CaseStatus.RECEIVED
    assert (case.text, case.channel, case.received_at, case.repeat_count) == (LEAK, "12345", NOW, 0)
    assert case.complainant == {"name": "王某", "phone": PHONE}
    assert case.complainant_key and PHONE not in case.complainant_key
    assert case.timeline_ids == ["received:12345:ev-1"]
    assert [e.id for e in await storage.cases.timeline(case.id)] == ["received:12345:ev-1"]
    [event] = received()
    assert event["case_id"] == case.id and event["event_id"] == "12345:ev-1.received"
    assert event["payload"]["text"] == LEAK and event["payload"]["repeat_count"] == 0
    wire = json.dumps(event, ensure_ascii=False)
    assert PHONE not in wire and "王某" not in wire  # no personal data downstream, only the keyed hash
    assert event["payload"]["complainant_key"] == case.complainant_key


async def test_the_same_event_again_changes_nothing(broker: KafkaBroker, storage: MemoryStorage) -> None:
    await broker.publish(body(channel_event("ev-1", LEAK)), topics.CHANNEL_EVENTS)
    first = only_case(storage).model_copy(deep=True)

    await broker.publish(body(channel_event("ev-1", LEAK)), topics.CHANNEL_EVENTS)

    again = only_case(storage)
    assert again == first  # same id, same version, same timeline
    assert len(await storage.cases.timeline(again.id)) == 1
    assert not storage.receipts.stored and not storage.dead_letters.stored
    # the redelivery announces the case again, under the same event id, for a consumer that missed it
    assert [e["event_id"] for e in received()] == ["12345:ev-1.received"] * 2


async def test_a_repeat_report_joins_the_open_case(broker: KafkaBroker, storage: MemoryStorage) -> None:
    await broker.publish(body(channel_event("ev-1", LEAK)), topics.CHANNEL_EVENTS)
    await broker.publish(body(channel_event("ev-2", LEAK_AGAIN)), topics.CHANNEL_EVENTS)

    case = only_case(storage)
    assert case.id == case_id_for("12345", "ev-1")
    assert case.repeat_count == 1 and RiskFlag.REPEATED in case.risk_flags
    assert case.version == 1 and case.status is CaseStatus.RECEIVED
    assert case.timeline_ids == ["received:12345:ev-1", "merged:12345:ev-2"]
    merged = (await storage.cases.timeline(case.id))[-1]
    assert merged.kind == "merged" and merged.detail["match"] == "same_complainant"
    assert storage.receipts.stored == {"12345:ev-2": case.id}
    assert case_id_for("12345", "ev-2") not in storage.cases.stored
    assert [e["case_id"] for e in received()] == [case.id]  # a merge opens no case and announces none

    await broker.publish(body(channel_event("ev-2", LEAK_AGAIN)), topics.CHANNEL_EVENTS)  # redelivered
    assert only_case(storage).repeat_count == 1


async def test_a_similar_report_from_another_phone_opens_its_own_case(
        broker: KafkaBroker, storage: MemoryStorage) -> None:
    """Without the same complainant, only near-identical words make a repeat: a paraphrase is not enough."""
    await broker.publish(body(channel_event("ev-1", LEAK)), topics.CHANNEL_EVENTS)
    await broker.publish(body(channel_event("ev-2", LEAK_AGAIN, phone="13900001111")), topics.CHANNEL_EVENTS)

    assert sorted(storage.cases.stored) == sorted([case_id_for("12345", "ev-1"), case_id_for("12345", "ev-2")])
    assert all(c.repeat_count == 0 for c in storage.cases.stored.values())
    assert not storage.receipts.stored
    assert len(received()) == 2


async def test_malformed_json_is_dead_lettered_and_the_next_event_still_processed(
        broker: KafkaBroker, storage: MemoryStorage) -> None:
    await broker.publish_batch(b'{"event_id": "ev-bad", "text": ', body(channel_event("ev-1", LEAK)),
                               topic=topics.CHANNEL_EVENTS)

    [(source, letter)] = storage.dead_letters.stored.items()
    assert source.startswith(f"{topics.CHANNEL_EVENTS}:")
    assert (letter["service"], letter["reason"]) == ("intake", "malformed_json")
    assert "ev-bad" not in json.dumps(letter, default=str)  # the store keeps the reason, not the body
    await main.service.dead_letters.assert_called_once_with(
        b'{"event_id": "ev-bad", "text": ', headers={"x-dlq-reason": "malformed_json", "x-dlq-service": "intake"})
    assert only_case(storage).id == case_id_for("12345", "ev-1")
    assert [e["case_id"] for e in received()] == [case_id_for("12345", "ev-1")]


async def test_a_complaint_of_two_matters_opens_two_linked_cases(broker: KafkaBroker, storage: MemoryStorage) -> None:
    await broker.publish(body(channel_event("ev-9", TWO_MATTERS)), topics.CHANNEL_EVENTS)

    first_id, second_id = case_id_for("12345", "ev-9"), case_id_for("12345", derive_event_id("ev-9", "matter2"))
    assert sorted(storage.cases.stored) == sorted([first_id, second_id])
    first, second = storage.cases.stored[first_id], storage.cases.stored[second_id]
    assert first.text.startswith("我借给同村的张某") and "路灯" not in first.text
    assert second.text.startswith("另外，我家门口的路灯")
    assert (first.matter and first.matter.index, second.matter and second.matter.index) == (1, 2)
    assert first.matter and first.matter.of == 2
    assert first.linked_cases == [second_id] and second.linked_cases == [first_id]
    assert first.timeline_ids == ["received:12345:ev-9", "linked:12345:ev-9"]
    assert second.timeline_ids == [f"received:12345:{derive_event_id('ev-9', 'matter2')}", "linked:12345:ev-9"]
    assert [(e["case_id"], e["payload"]["text"]) for e in received()] == [(first_id, first.text),
                                                                          (second_id, second.text)]

    await broker.publish(body(channel_event("ev-9", TWO_MATTERS)), topics.CHANNEL_EVENTS)  # redelivered
    assert len(storage.cases.stored) == 2
    assert storage.cases.stored[first_id].timeline_ids == first.timeline_ids


async def test_a_cloudevent_in_either_mode_opens_one_case(broker: KafkaBroker, storage: MemoryStorage) -> None:
    """Binary mode (attributes in ce_* headers) and structured mode (the whole CloudEvent in the value) of one
    CloudEvent are one report: its source and id name it."""
    event = CloudEvent({"id": "ce-1", "source": "/channels/12345", "type": TYPE, "datacontenttype": "application/json",
                        "time": datetime(2026, 11, 30, 8, 30, tzinfo=UTC)}, {"text": LEAK})
    for message in (kafka.to_binary_event(event), kafka.to_structured_event(event), kafka.to_binary_event(event)):
        await broker.publish(message.value, topics.CHANNEL_EVENTS, headers={k: v.decode() for k, v in message.headers.items()})
    case = only_case(storage)
    assert case.id == case_id_for("12345", event_id_of("/channels/12345", "ce-1"))
    assert case.text == LEAK and case.repeat_count == 0
    assert len(received()) == 3  # the first announced, each redelivery announced again as first received
    assert {e["case_id"] for e in received()} == {case.id}
