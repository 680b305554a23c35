"""The status feed on the real broker, store and services: a 12345 complaint is routed, accepted, resolved with
an answer and visited; the feed carries each milestone of it exactly once, to a consumer that reads committed
records, also when the feed's relay is killed with SIGKILL half-way and started again."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.events import case_id_for
from tests.conftest import channel_event, eventually, publish
from tests.e2e.test_lifecycle import Db, act
from tools.processes import Fleet

pytestmark = [pytest.mark.e2e]
TEXT = "物业把小区的消防通道划成收费车位，车停满了消防车根本进不来，找物业三次都说是业委会定的，请求处理。"


async def read_updates(feed: AIOKafkaConsumer, case_id: str, seen: list[dict[str, Any]],
                       until: set[str]) -> list[dict[str, Any]]:
    """Read the feed until the case's updates include every milestone in `until` (and a little after, for
    duplicates to show)."""
    async def enough() -> bool | None:
        for records in (await feed.getmany(timeout_ms=500)).values():
            for record in records:
                update = json.loads(record.value)
                if update["case_id"] == case_id:
                    assert record.key == update["source_channel"].encode()  # keyed by the upstream channel
                    seen.append(update)
        return until <= {u["payload"]["milestone"] for u in seen} or None

    await eventually(enough, 90, f"milestones {sorted(until)} of {case_id} on the feed")
    for _ in range(4):
        await enough()
    return seen


async def test_every_milestone_once_even_with_the_relay_killed(
        fleet: Fleet, producer: AIOKafkaProducer, db: Db, desk_url: str, feed: AIOKafkaConsumer) -> None:
    event = channel_event(TEXT, channel="12345", external_ref="12345-20261201-0042",
                          complainant={"name": "刘秀兰", "phone": "13700001111"})
    await publish(producer, event)
    case_id = case_id_for("12345", event["event_id"])

    async def routed() -> dict[str, Any] | None:
        return await db.cases.find_one({"_id": case_id, "status": "routed"})

    unit = (await eventually(routed, 60, f"{case_id} routed"))["unit"]
    seen: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=desk_url, timeout=10) as desk:
        await act(desk, db, unit, case_id, "accept")
        await read_updates(feed, case_id, seen, {"received", "routed", "accepted"})

        fleet["feed"].stop(kill=True)  # SIGKILL: whatever it had in flight is aborted
        await act(desk, db, unit, case_id, "resolve", note="已责令物业恢复消防通道并答复来电人。")
        fleet["feed"].start()
        fleet.wait_healthy(names=["feed"])
        await act(desk, db, unit, case_id, "return_visit", satisfaction="satisfied", solved=True)
        await read_updates(feed, case_id, seen, {"resolved", "return_visit", "closed"})

    milestones = [u["payload"]["milestone"] for u in seen]
    assert milestones == ["received", "routed", "accepted", "resolved", "return_visit", "closed"], milestones
    assert len({u["event_id"] for u in seen}) == len(seen)
    by_name = {u["payload"]["milestone"]: u["payload"] for u in seen}
    assert by_name["routed"]["unit"] == unit and by_name["routed"]["due"]  # the 12345 limit's due date
    assert by_name["resolved"]["answer"] == "已责令物业恢复消防通道并答复来电人。"
    assert (by_name["return_visit"]["satisfaction"], by_name["return_visit"]["solved"]) == ("satisfied", True)
    assert all(u["payload"]["external_ref"] == "12345-20261201-0042" for u in seen)  # the hotline's own ticket
    raw = json.dumps(seen, ensure_ascii=False)
    assert "刘秀兰" not in raw and "13700001111" not in raw and TEXT not in raw  # no personal data, no complaint
