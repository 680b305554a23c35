"""The Open311 gateway in the running fleet: the PyPI `georeport` client reads the service list and a
request back; a form-encoded post (as FixMyStreet sends it) becomes a routed case; worked by a desk, it reads
back closed with the answer, and the status feed carried its milestones once each."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from georeport import GeoReport
from pymongo.asynchronous.database import AsyncDatabase

from tests.conftest import OPEN311_KEY, eventually
from tests.e2e.test_feed import read_updates
from tests.e2e.test_lifecycle import act
from tools.processes import Fleet

pytestmark = [pytest.mark.e2e]


async def post_until_routed(http: httpx.AsyncClient, db: AsyncDatabase[dict[str, Any]], form: dict[str, str],
                            idempotency_key: str) -> tuple[str, dict[str, Any]]:
    """Post a request as an upstream does, turn its token into the case id, and wait for the case's routing."""
    reply = await http.post("/requests.json", data=form, headers={"Idempotency-Key": idempotency_key})
    assert reply.status_code == 200, reply.text
    token = reply.json()[0]["token"]

    async def case_id() -> str | None:
        found = await http.get(f"/tokens/{token}.json")
        return str(found.json()[0]["service_request_id"]) if found.status_code == 200 else None

    cid = await eventually(case_id, 60, "the token's case")

    async def routed() -> dict[str, Any] | None:
        return await db.cases.find_one({"_id": cid, "status": "routed"})

    return cid, await eventually(routed, 60, f"{cid} routed")


async def test_an_upstream_posts_and_reads_back(fleet: Fleet, db: AsyncDatabase[dict[str, Any]]) -> None:
    root = f"http://127.0.0.1:{fleet['open311'].port}/open311/v2"
    client = GeoReport(root)
    services = await asyncio.to_thread(client.get_service_list)
    assert {s["service_code"] for s in services} >= {"neighbor", "labor", "safety_hazard"}
    assert (await asyncio.to_thread(client.get_service_definition, "labor"))["service_code"] == "labor"

    async with httpx.AsyncClient(base_url=root, timeout=10) as http:
        cid, case = await post_until_routed(http, db, {
            "api_key": OPEN311_KEY, "service_code": "labor", "address_string": "临江新区工业园3号厂房",
            "description": "我们二十多个工人在工地干了半年，老板拖欠工资八万多元一直不给，请帮忙调解",
            "first_name": "三", "last_name": "张", "phone": "13800138000"}, "e2e-1")
        assert case["unit"] == "mediation" and case["channel"] == "online"

        request = await asyncio.to_thread(client.get_service_request, cid)  # georeport sends no key
        assert request["service_request_id"] == cid and request["status"] == "open"
        assert request["agency_responsible"] == "矛盾纠纷调处中心" and request["description"] is None
        own = (await http.get(f"/requests/{cid}.json", params={"api_key": OPEN311_KEY})).json()[0]
        assert own["description"].startswith("我们二十多个工人") and "expected_datetime" in own
        listed = (await http.get("/requests.json", params={"api_key": OPEN311_KEY})).json()
        assert cid in {r["service_request_id"] for r in listed}
        assert "13800138000" not in str(listed) and "张" not in str(listed)
    xml = GeoReport(root, output_format="xml")
    assert (await asyncio.to_thread(xml.get_service_request, cid))["service_request_id"] == cid


async def test_the_round_trip_closes_the_upstream_ticket_with_the_answer(
        fleet: Fleet, db: AsyncDatabase[dict[str, Any]], desk_url: str, feed: AIOKafkaConsumer) -> None:
    """An upstream system posts, a desk accepts and resolves with an answer, the upstream reads its request
    closed with that answer, and the status feed carried each milestone of it once."""
    root = f"http://127.0.0.1:{fleet['open311'].port}/open311/v2"
    async with httpx.AsyncClient(base_url=root, timeout=10) as http:
        cid, case = await post_until_routed(http, db, {
            "api_key": OPEN311_KEY, "service_code": "neighbor", "address_string": "临江新区幸福里5栋",
            "description": "楼上邻居每天夜里十二点以后还在家里跳绳，说了好几次都不听，想请调解员来调解一下"},
            "e2e-round-trip")
        unit = case["unit"]
        answer = "已上门调解，双方约定晚十点后不再跳绳，已电话告知反映人。"
        async with httpx.AsyncClient(base_url=desk_url, timeout=10) as desk:
            await act(desk, db, unit, cid, "accept")
            await act(desk, db, unit, cid, "resolve", note=answer)
        request = (await http.get(f"/requests/{cid}.json", params={"api_key": OPEN311_KEY})).json()[0]
        assert (request["status"], request["status_notes"]) == ("closed", answer)

    updates = await read_updates(feed, cid, [], {"received", "routed", "accepted", "resolved"})
    assert [u["payload"]["milestone"] for u in updates] == ["received", "routed", "accepted", "resolved"]
    assert updates[-1]["payload"]["answer"] == answer
