"""CloudEvents on the real broker and server: the SDK builds a binary-mode and a structured-mode complaint, they
go out through aiokafka, and each becomes a routed case; the same CloudEvent sent again opens no second case."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from cloudevents.core.bindings import kafka
from cloudevents.core.v1.event import CloudEvent
from pymongo.asynchronous.database import AsyncDatabase

from shared import topics
from shared.cloudevents import TYPE, event_id_of
from shared.events import case_id_for
from tests.conftest import eventually
from tools.processes import Fleet

pytestmark = [pytest.mark.e2e]
Db = AsyncDatabase[dict[str, Any]]


async def send(producer: AIOKafkaProducer, message: kafka.KafkaMessage, key: bytes) -> None:
    """On one partition (one key), so the marker sent last is read last. (Texts of their own: the same words as
    another test's would be merged into its case as a repeat.)"""
    await producer.send_and_wait(topics.CHANNEL_EVENTS, message.value, key=key,
                                 headers=list(message.headers.items()))


async def routed(db: Db, case_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        return await db.cases.find_one({"_id": case_id, "status": "routed"})

    return await eventually(probe, 60, f"case {case_id} to be routed")


async def test_binary_and_structured_cloudevents_become_routed_cases_once(
    fleet: Fleet, producer: AIOKafkaProducer, db: Db
) -> None:
    run = uuid.uuid4().hex[:8]
    key = f"cloudevents-{run}".encode()
    at = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)
    binary = CloudEvent({"id": f"bin-{run}", "source": "/channels/12345", "type": TYPE, "time": at,
                         "datacontenttype": "application/json", "subject": f"T-{run}"},
                        {"text": "有人打电话冒充银行客服，说我的卡被盗刷要转到安全账户，我已经转了两万块"})
    structured = CloudEvent({"id": f"str-{run}", "source": "https://portal.example/complaints", "type": TYPE,
                             "time": at, "datacontenttype": "application/json"},
                            {"channel": "online", "text": "离婚后孩子跟前妻生活，她三个月不让我探望女儿，想请调解中心帮忙协调探望时间"})
    await send(producer, kafka.to_binary_event(binary), key)
    await send(producer, kafka.to_structured_event(structured), key)

    binary_case = case_id_for("12345", event_id_of("/channels/12345", f"bin-{run}"))
    structured_case = case_id_for("online", event_id_of("https://portal.example/complaints", f"str-{run}"))
    first = await routed(db, binary_case)
    assert (first["channel"], first["unit"], first["external_ref"]) == ("12345", "police", f"T-{run}")
    second = await routed(db, structured_case)
    assert (second["channel"], second["unit"]) == ("online", "mediation")

    # The same CloudEvent again, in either mode, then a marker behind it: the case is not opened twice.
    await send(producer, kafka.to_binary_event(binary), key)
    await send(producer, kafka.to_structured_event(binary), key)
    marker = CloudEvent({"id": f"marker-{run}", "source": "/channels/12345", "type": TYPE, "time": at,
                         "datacontenttype": "application/json"}, {"text": "镇上菜市场的排水沟堵了一个月，污水漫到路上，摊主和买菜的人都叫苦"})
    await send(producer, kafka.to_binary_event(marker), key)
    await routed(db, case_id_for("12345", event_id_of("/channels/12345", f"marker-{run}")))
    assert await db.cases.count_documents({"text": "有人打电话冒充银行客服，说我的卡被盗刷要转到安全账户，我已经转了两万块"}) == 1
    again = await db.cases.find_one({"_id": binary_case})
    assert again is not None and again["repeat_count"] == 0
