"""The classification service as deployed (services/classification/main.py), on FastStream's test broker:
case-received in, case-classified out with the assessment. It keeps no state; the memory storage stands in
for the store only so a dead letter can be seen (and so nothing else is seen written)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from faststream.kafka import KafkaBroker

from services.classification import main
from shared import topics
from shared.adapters.memory import MemoryStorage
from shared.events import CaseClassified, CaseReceived, CaseReceivedPayload, Channel

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
LEAK = "我家楼上的住户家里水管漏水，已经漏了一个星期，我家天花板都泡坏了，找他们协商也不理，请帮忙处理。"
TRAPPED = "我们小区3号楼的电梯突然停在两层中间，里面困着一个老人和一个小孩，按了警铃没人来，快来救人！"


def case_received(case_id: str, text: str, repeat_count: int = 0) -> bytes:
    event = CaseReceived(event_id=f"12345:{case_id}.received", case_id=case_id, source_channel=Channel.HOTLINE_12345,
                         occurred_at=NOW, traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                         payload=CaseReceivedPayload(text=text, received_at=NOW, repeat_count=repeat_count))
    return event.model_dump_json().encode()


@pytest.fixture
def storage(monkeypatch: pytest.MonkeyPatch) -> MemoryStorage:
    memory = MemoryStorage()
    monkeypatch.setattr(main.service, "storage", memory)
    return memory


def classified() -> list[CaseClassified]:
    """The case-classified events published, read back as the routing service reads them."""
    return [CaseClassified.model_validate(call.args[0]) for call in main.classified.mock.call_args_list]


def nothing_stored(storage: MemoryStorage) -> bool:
    return not (storage.cases.stored or storage.receipts.stored or storage.repeats.stored or storage.timers.filed
                or storage.actions.stored or storage.dead_letters.stored)


async def test_a_received_case_is_classified_with_its_reasons(broker: KafkaBroker, storage: MemoryStorage) -> None:
    await broker.publish(case_received("GT-LEAK", LEAK), topics.CASE_RECEIVED)

    [event] = classified()
    assert (event.case_id, event.event_id) == ("GT-LEAK", "12345:GT-LEAK.received.classified")
    assert event.source_channel is Channel.HOTLINE_12345
    assert event.traceparent == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"  # the trace goes on
    a = event.payload.assessment
    assert (a.category.value, a.urgency.value, a.danger) == ("neighbor", "normal", None)
    assert 0.0 < a.confidence <= 1.0 and a.reasons
    assert (event.payload.routing_attempt, event.payload.excluded_units) == (0, [])
    assert nothing_stored(storage)  # stateless: routing records the assessment with the routing


async def test_someone_in_danger_now_is_critical(broker: KafkaBroker, storage: MemoryStorage) -> None:
    await broker.publish(case_received("GT-LIFT", TRAPPED), topics.CASE_RECEIVED)

    [event] = classified()
    a = event.payload.assessment
    assert (a.urgency.value, a.danger and a.danger.value) == ("critical", "trapped_disaster")
    assert "danger_now" in a.risk_flags
    assert nothing_stored(storage)


async def test_a_redelivery_concludes_the_same_under_the_same_id(broker: KafkaBroker, storage: MemoryStorage) -> None:
    for _ in range(2):
        await broker.publish(case_received("GT-LEAK", LEAK), topics.CASE_RECEIVED)

    first, again = classified()
    assert first.model_dump(exclude={"occurred_at"}) == again.model_dump(exclude={"occurred_at"})


async def test_a_repeated_report_is_more_urgent(broker: KafkaBroker, storage: MemoryStorage) -> None:
    await broker.publish(case_received("GT-LEAK", LEAK), topics.CASE_RECEIVED)
    await broker.publish(case_received("GT-LEAK2", LEAK, repeat_count=3), topics.CASE_RECEIVED)

    once, repeated = (e.payload.assessment for e in classified())
    assert repeated.urgency.rank > once.urgency.rank


async def test_an_event_of_the_wrong_shape_is_dead_lettered(broker: KafkaBroker, storage: MemoryStorage) -> None:
    wrong: dict[str, Any] = json.loads(case_received("GT-LEAK", LEAK))
    del wrong["payload"]["text"]
    await broker.publish_batch(json.dumps(wrong).encode(), case_received("GT-LIFT", TRAPPED),
                               topic=topics.CASE_RECEIVED)

    [letter] = storage.dead_letters.stored.values()
    assert (letter["service"], letter["reason"]) == ("classification", "schema_violation")
    assert "payload.text" in letter["detail"]
    await main.service.dead_letters.assert_called_once_with(headers={"x-dlq-reason": "schema_violation"})
    assert [e.case_id for e in classified()] == ["GT-LIFT"]  # the next event was still classified
