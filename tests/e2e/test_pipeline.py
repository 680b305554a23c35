"""The four services on the real broker and server: a complaint goes in, a routed case comes out."""

from __future__ import annotations

import asyncio
import hashlib
import json
import urllib.request
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo.asynchronous.database import AsyncDatabase

from shared import topics
from shared.events import case_id_for
from tests.conftest import channel_event, eventually, publish, timers_of
from tools import infra
from tools.processes import Fleet

pytestmark = [pytest.mark.e2e]
Db = AsyncDatabase[dict[str, Any]]


async def routed_case(db: Db, case_id: str, timeout: float = 60) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        return await db.cases.find_one({"_id": case_id, "status": "routed"})

    return await eventually(probe, timeout, f"case {case_id} to be routed")


async def dead_letter(db: Db, body: bytes, timeout: float = 60) -> dict[str, Any]:
    """The dead letter of exactly these bytes (other tests dead-letter things too)."""
    digest = hashlib.sha256(body).hexdigest()

    async def probe() -> dict[str, Any] | None:
        return await db.dead_letters.find_one({"body_sha256": digest})

    return await eventually(probe, timeout, "the dead letter of the event")


async def test_complaint_is_classified_routed_and_given_deadlines(
    fleet: Fleet, producer: AIOKafkaProducer, db: Db, endpoints: infra.Endpoints
) -> None:
    event = channel_event("社区干部在低保评审时收了我邻居的好处费", channel="12345",
                          complainant={"name": "李先生", "phone": "13900001111"})
    await publish(producer, event)
    case_id = case_id_for("12345", event["event_id"])

    case = await routed_case(db, case_id)
    assert case["unit"] == "visitor"
    assert case["category"] == "admin_complaint"
    assert case["routing"]["reasons"], "a routing decision carries its reasons"
    assert "visitor_accept" in (await eventually(
        lambda: db.cases.find_one({"_id": case_id, "deadlines.visitor_accept": {"$exists": True}}),
        what="the visitor.accept deadline"))["deadlines"]

    stored = await db.cases.find_one({"_id": case_id})
    assert stored is not None
    kinds = [e["kind"] for e in sorted(stored["timeline"], key=lambda e: e["at"])]
    assert kinds[:3] == ["received", "classified", "routed"]
    async def timed() -> bool:  # the follow-up times the deadlines when the routed event reaches it
        return len((await timers_of(db, case_id))[0]) >= 3

    await eventually(timed, what="the follow-up's timers")

    # The visitor desk's queue has it, and no personal data travels with it.
    consumer = AIOKafkaConsumer(topics.desk_topic("visitor"), bootstrap_servers=endpoints.kafka_bootstrap,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        found = None
        async with asyncio.timeout(30):
            while found is None:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    for record in records:
                        if case_id.encode() in record.value:
                            found = record.value
        assert b"13900001111" not in found
    finally:
        await consumer.stop()


async def test_the_brief_examples_reach_their_units(fleet: Fleet, producer: AIOKafkaProducer, db: Db) -> None:
    examples = {
        "小区电梯困人已经半小时了，物业电话打不通": ("command", "safety_hazard", "critical"),
        "前夫把孩子带走一个月不让我见，离婚协议写的是每周探视两次": ("mediation", "family", "normal"),
        "请问企业拖欠货款两年了还能起诉吗，诉讼时效怎么算": ("legal", "legal_aid", "low"),
        "有人冒充快递客服让我开通备用金，被扣了三千": ("police", "fraud", "high"),
    }
    ids = {}
    for text in examples:
        event = channel_event(text)
        await publish(producer, event)
        ids[text] = case_id_for("12345", event["event_id"])
    for text, (unit, category, urgency) in examples.items():
        case = await routed_case(db, ids[text])
        assert (case["unit"], case["category"], case["urgency"]) == (unit, category, urgency), text


async def test_a_duplicate_event_opens_one_case_routed_once(fleet: Fleet, producer: AIOKafkaProducer, db: Db) -> None:
    event = channel_event("楼上邻居天天半夜跺脚，说了好多次也不听")
    for _ in range(3):
        await publish(producer, event)
    case_id = case_id_for("12345", event["event_id"])
    await routed_case(db, case_id)
    # The later copies are processed after the first; give them time to land before counting.
    follow = channel_event("路边的井盖丢了，晚上很危险")
    await publish(producer, follow)
    await routed_case(db, case_id_for("12345", follow["event_id"]))
    assert await db.cases.count_documents({"_id": case_id}) == 1
    assert list((await db.cases.find_one({"_id": case_id}) or {})["routings"]) == ["0"]
    stored = await db.cases.find_one({"_id": case_id})
    assert stored is not None
    assert [e["kind"] for e in stored["timeline"]].count("routed") == 1


@pytest.mark.parametrize(("body", "reason"), [
    (b'{"event_id": "broken", "channel": ', "malformed_json"),
    (b'{"event_id": "no-text", "channel": "12345", "occurred_at": "2026-11-27T09:30:00+08:00"}',
     "schema_violation"),
    (channel_event("x" * 9000), "text_too_long"),
    (channel_event("有人偷电瓶", complainant={"$where": "sleep(1000)"}), "forbidden_key"),
    (b"\xff\xfe not utf-8", "invalid_utf8"),
], ids=["malformed-json", "schema-violation", "oversized-text", "mongo-operator-key", "invalid-utf8"])
async def test_bad_input_is_dead_lettered_and_the_consumer_carries_on(
    fleet: Fleet, producer: AIOKafkaProducer, db: Db, body: bytes | dict[str, Any], reason: str
) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    await publish(producer, raw)
    letter = await dead_letter(db, raw)
    assert (letter["service"], letter["reason"]) == ("intake", reason)
    assert letter["detail"], "the dead letter says what is wrong"

    # A different matter each time: the same text again would rightly join the first case as a repeat.
    after = channel_event(f"隔壁装修电钻声从早上七点响到晚上十点，这是{reason}之后的第二件事")
    await publish(producer, after)
    await routed_case(db, case_id_for("12345", after["event_id"]))


async def test_health_and_metrics(fleet: Fleet) -> None:
    for service in fleet.services.values():
        assert service.healthy(), service.name
        with urllib.request.urlopen(f"http://127.0.0.1:{service.port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        if service.name == "desk_api":
            assert "triage_desk_api_requests" in text
        elif service.name == "open311":
            assert "triage_open311_requests" in text
        elif service.name == "feed":  # its relay writes with Kafka transactions, outside FastStream's middleware
            assert "triage_feed_milestones" in text
        else:
            assert "faststream_received_messages_total" in text  # FastStream's own Prometheus middleware
            assert "triage_stage_seconds" in text


async def test_a_complaint_with_two_matters_becomes_two_linked_cases_each_routed_on_its_own(
    producer: AIOKafkaProducer, db: Db, fleet: Fleet
) -> None:
    text = ("我借给同村老李三万块钱，借条写的去年年底还，到现在一直拖着不还，想请调解中心帮忙调解。"
            "另外还有个事，我们小区3号楼电梯卡在七楼和八楼之间，里面困着一个孕妇和两个老人，物业电话打不通。")
    event = channel_event(text, channel="12345")
    for _ in range(2):  # a redelivered event splits into the same cases
        await publish(producer, event)
    first = case_id_for("12345", event["event_id"])
    second = case_id_for("12345", f"{event['event_id']}.matter2")

    debt, lift = await routed_case(db, first), await routed_case(db, second)
    assert debt["unit"] == "mediation" and debt["urgency"] != "critical"
    assert (lift["unit"], lift["urgency"]) == ("command", "critical")
    assert lift["routing"]["override"] == "danger.trapped_disaster"
    assert "电梯" in lift["text"] and "借条" not in lift["text"]
    linked = await eventually(lambda: db.cases.find_one({"_id": first, "linked_cases": second}), what="the link")
    assert linked["matter"] == {"index": 1, "of": 2}
    assert (await db.cases.find_one({"_id": second}))["linked_cases"] == [first]
    assert await db.cases.count_documents({"linked_cases": first}) == 1  # the redelivery opened nothing more
