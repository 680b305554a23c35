"""What the hostile-input tests share: sending raw bytes, waiting for a case or a decision, forging actions."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pymongo.asynchronous.database import AsyncDatabase

from shared import topics
from shared.domain.lifecycle import Action
from shared.domain.triage import Unit
from shared.events import Channel, DeskAction, DeskActionPayload
from tests.conftest import eventually, token
from tests.hostile import corpus

Db = AsyncDatabase[dict[str, Any]]

# What must not change about a case that a hostile message tried to touch (its version may: a refused action
# is written on the timeline).
FROZEN = ("status", "unit", "category", "urgency", "risk_flags", "repeat_count", "text", "complainant", "location",
          "channel", "routing_attempt", "routings", "accepted_at", "excluded_units", "handback_reason")
DEAD_LETTER_FIELDS = {"_id", "service", "reason", "detail", "source", "at", "size", "body_sha256"}


def frozen(doc: dict[str, Any] | None) -> dict[str, Any]:
    assert doc is not None
    return {field: doc.get(field) for field in FROZEN}


async def send(producer: AIOKafkaProducer, body: bytes | dict[str, Any], *, topic: str = topics.CHANNEL_EVENTS,
               key: bytes | None = corpus.KEY, headers: tuple[tuple[str, bytes], ...] = (),
               partition: int | None = None) -> Any:
    raw = body if isinstance(body, bytes) else corpus.encode(body)
    return await producer.send_and_wait(topic, raw, key=key, headers=list(headers) or None, partition=partition)


async def routed_case(db: Db, case_id: str, timeout: float = 30) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        return await db.cases.find_one({"_id": case_id, "status": "routed"})

    return await eventually(probe, timeout, f"case {case_id} to be routed")


async def decided(db: Db, action_id: str, timeout: float = 30) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        return await db.desk_actions.find_one({"_id": action_id, "outcome": {"$in": ["applied", "rejected"]}})

    return await eventually(probe, timeout, f"desk action {action_id} to be decided")


async def act(desk: httpx.AsyncClient, db: Db, unit: str, case_id: str, action: str, **fields: Any) -> dict[str, Any]:
    reply = await desk.post(f"/desks/{unit}/cases/{case_id}/actions", json={"action": action, "actor": "e2e", **fields},
                            headers={"Authorization": f"Bearer {token(unit)}"})
    assert reply.status_code == 202, reply.text
    return await decided(db, reply.json()["action_id"])


def forged_action(case_id: str, unit: Unit, action: Action, channel: Channel, **fields: Any) -> DeskAction:
    return DeskAction(event_id=corpus.event_id("DA-forged"), case_id=case_id, source_channel=channel,
                      payload=DeskActionPayload(unit=unit, action=action, actor="intruder", **fields))


@contextlib.contextmanager
def setting_up(what: str) -> Iterator[None]:
    """Label a failure in a test's set-up as such, apart from the assertion the test is about."""
    try:
        yield
    except AssertionError as exc:
        pytest.fail(f"{what}: {exc}")
