"""A case to its end on the real broker and server: desk actions through the desk API, hand-back and
re-routing, extension, return visits, and durable timers that survive a follow-up restart."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo.asynchronous.database import AsyncDatabase

from shared import topics
from shared.adapters.mongo import MongoStorage
from shared.events import case_id_for
from tests.conftest import channel_event, eventually, publish, timers_of, token
from tools import infra
from tools.processes import Fleet

pytestmark = [pytest.mark.e2e]
Db = AsyncDatabase[dict[str, Any]]


async def new_case(producer: AIOKafkaProducer, db: Db, text: str, channel: str = "letter") -> dict[str, Any]:
    event = channel_event(text, channel=channel)
    await publish(producer, event)
    case_id = case_id_for(channel, event["event_id"])

    async def routed() -> dict[str, Any] | None:
        return await db.cases.find_one({"_id": case_id, "status": "routed"})

    return await eventually(routed, 60, f"{case_id} routed")


async def act(desk: httpx.AsyncClient, db: Db, unit: str, case_id: str, action: str, **fields: Any) -> dict[str, Any]:
    """Post an action as the unit's desk and wait for the follow-up's verdict on it."""
    reply = await desk.post(f"/desks/{unit}/cases/{case_id}/actions", json={"action": action, "actor": "e2e", **fields},
                            headers={"Authorization": f"Bearer {token(unit)}"})
    assert reply.status_code == 202, reply.text
    action_id = reply.json()["action_id"]

    async def decided() -> dict[str, Any] | None:
        return await db.desk_actions.find_one({"_id": action_id, "outcome": {"$in": ["applied", "rejected"]}})

    return await eventually(decided, 60, f"{action} on {case_id} decided")


async def status_of(db: Db, case_id: str) -> str:
    case = await db.cases.find_one({"_id": case_id})
    assert case is not None
    return str(case["status"])


@pytest.fixture
async def desk(desk_url: str) -> Any:
    async with httpx.AsyncClient(base_url=desk_url, timeout=10) as client:
        yield client


async def test_a_petition_through_every_step_to_closure(
    fleet: Fleet, producer: AIOKafkaProducer, db: Db, desk: httpx.AsyncClient
) -> None:
    case = await new_case(producer, db, "尊敬的领导：我反映镇上城建办工作人员办理建房审批时故意拖延、索要好处费，已经半年没有答复，请求调查处理。")
    cid = case["_id"]
    assert case["unit"] == "visitor"

    assert (await act(desk, db, "visitor", cid, "resolve", note="已答复"))["outcome"] == "rejected"  # not accepted
    assert (await act(desk, db, "visitor", cid, "accept"))["outcome"] == "applied"
    after_accept = await db.cases.find_one({"_id": cid})
    assert after_accept is not None
    assert after_accept["deadlines"]["visitor_accept"].get("met_at")
    due = after_accept["deadlines"]["visitor_resolve"]["due"]

    assert (await act(desk, db, "visitor", cid, "request_extension", reason="需调取历史档案",
                      extension_days=30))["outcome"] == "applied"
    second = await act(desk, db, "visitor", cid, "request_extension", reason="再延一次")
    assert second["outcome"] == "rejected" and "already extended" in second["reason"]
    extended = await db.cases.find_one({"_id": cid})
    assert extended is not None and extended["deadlines"]["visitor_resolve"]["due"] > due

    assert (await act(desk, db, "visitor", cid, "progress_note", note="已约谈城建办"))["outcome"] == "applied"
    assert (await act(desk, db, "visitor", cid, "resolve", note="已答复"))["outcome"] == "applied"
    assert (await act(desk, db, "visitor", cid, "return_visit", satisfaction="dissatisfied"))["outcome"] == "applied"
    assert await status_of(db, cid) == "reopened"
    assert (await act(desk, db, "visitor", cid, "accept"))["outcome"] == "applied"
    assert (await act(desk, db, "visitor", cid, "resolve", note="已再次答复"))["outcome"] == "applied"
    assert (await act(desk, db, "visitor", cid, "return_visit", satisfaction="satisfied"))["outcome"] == "applied"
    assert await status_of(db, cid) == "closed"
    assert all(d.get("met_at") for d in (await db.cases.find_one({"_id": cid}) or {})["deadlines"].values())

    closed = await db.cases.find_one({"_id": cid})
    assert closed is not None
    kinds = [e["kind"] for e in closed["timeline"]]
    for kind in ("received", "classified", "routed", "accept", "request_extension", "action_rejected",
                 "deadline_extended", "progress_note", "resolve", "return_visit"):
        assert kind in kinds, kind


async def test_a_wrongly_routed_case_is_handed_back_and_never_returns_to_that_unit(
    fleet: Fleet, producer: AIOKafkaProducer, db: Db, desk: httpx.AsyncClient
) -> None:
    case = await new_case(producer, db, "我和邻居因为院墙边界吵了三年了，村里调解过两次没结果，想请调解中心再调一次。",
                          channel="walk_in")
    cid, first = case["_id"], case["unit"]
    missing_reason = await desk.post(f"/desks/{first}/cases/{cid}/actions", json={"action": "hand_back", "actor": "e2e"},
                                     headers={"Authorization": f"Bearer {token(first)}"})
    assert missing_reason.status_code == 422
    assert (await act(desk, db, first, cid, "hand_back", reason="属于宅基地确权，不是本单位"))["outcome"] == "applied"

    async def rerouted() -> dict[str, Any] | None:
        return await db.cases.find_one({"_id": cid, "status": "routed", "routing_attempt": 1})

    again = await eventually(rerouted, 60, "re-routing after hand-back")
    assert again["unit"] != first
    assert first in again["excluded_units"]
    assert again["handback_reason"] == "属于宅基地确权，不是本单位"
    assert sorted(again["routings"]) == ["0", "1"]


async def test_the_desk_api_keeps_each_unit_to_its_own_cases(
    fleet: Fleet, producer: AIOKafkaProducer, db: Db, desk: httpx.AsyncClient
) -> None:
    case = await new_case(producer, db, "有人冒充公安局打电话说我涉嫌洗钱，让我把存款转到安全账户，我刚转了八万。",
                          channel="110")
    cid = case["_id"]
    assert case["unit"] == "police"
    assert (await desk.get(f"/desks/police/cases/{cid}")).status_code == 401
    wrong = {"Authorization": "Bearer not-a-real-token"}
    assert (await desk.get(f"/desks/police/cases/{cid}", headers=wrong)).status_code == 401
    mediation = {"Authorization": f"Bearer {token('mediation')}"}
    assert (await desk.get(f"/desks/police/cases/{cid}", headers=mediation)).status_code == 404
    assert (await desk.get(f"/desks/mediation/cases/{cid}", headers=mediation)).status_code == 404
    police = {"Authorization": f"Bearer {token('police')}"}
    detail = await desk.get(f"/desks/police/cases/{cid}", headers=police)
    assert detail.status_code == 200 and detail.json()["case"]["unit"] == "police"
    queue = await desk.get("/desks/police/cases", headers=police)
    assert cid in [c["case_id"] for c in queue.json()["cases"]]


async def test_timers_survive_a_follow_up_restart_and_fire_once(
    fleet: Fleet, producer: AIOKafkaProducer, db: Db, desk: httpx.AsyncClient, endpoints: infra.Endpoints
) -> None:
    case = await new_case(producer, db, "我想申请法律援助，公司拖欠我工资四个月不给，我没钱请律师，需要准备什么材料？",
                          channel="12348")
    cid, unit = case["_id"], case["unit"]
    assert (await act(desk, db, unit, cid, "accept"))["outcome"] == "applied"
    filed, done = await timers_of(db, cid)
    assert len(filed) >= 3 and not done

    clock = MongoStorage(db.client, db.name).clock  # the follow-up's simulated clock lives in the store
    fleet["followup"].stop(kill=True)  # kill -9 with timers pending
    try:
        await clock.set_offset_seconds(90 * 86400)
        fleet["followup"].start()
        fleet.wait_healthy(names=["followup"])

        async def all_fired() -> bool:
            filed, done = await timers_of(db, cid)
            return len(done) == len(filed)

        await eventually(all_fired, 60, "every timer of the case to fire")
    finally:
        await clock.set_offset_seconds(0)

    stored = await db.cases.find_one({"_id": cid})
    assert stored is not None
    fired = [e for e in stored["timeline"] if e["id"].startswith("timer:")]
    assert len(fired) == len({e["id"] for e in fired}) >= 3  # each fired once, across the kill
    escalated = await db.cases.find_one({"_id": cid})
    assert escalated is not None and escalated["status"] == "escalated" and escalated["unit"] == "command"

    consumer = AIOKafkaConsumer(topics.CASE_ALERTS, bootstrap_servers=endpoints.kafka_bootstrap,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        alerts: Counter[bytes] = Counter()
        for _ in range(10):
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    if record.key == cid.encode():
                        alerts[record.value] += 1
        assert sum(alerts.values()) == len(fired), "one alert per timer, none twice"
    finally:
        await consumer.stop()
