"""A poison message on the channel topic is dead-lettered once, and what follows it is not held up; run last
among the hostile tests, as it stops and restarts intake."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared import topics
from shared.events import case_id_for
from tests.hostile import corpus
from tests.hostile.corpus import DeadLettered, HostileInput
from tests.hostile.helpers import Db, send, setting_up
from tools import infra
from tools.processes import Fleet

pytestmark = [pytest.mark.e2e]


@pytest.mark.parametrize("poison", [pytest.param(p, id=p.name) for p in corpus.POISON])
async def test_a_poison_message_is_dead_lettered_not_redelivered_forever(
    poison: HostileInput, fleet: Fleet, producer: AIOKafkaProducer, db: Db, endpoints: infra.Endpoints,
    database_name: str
) -> None:
    """Last in the module: a stalled intake is set going again afterwards, by moving its group's offset past
    the poison as an operator would."""
    assert isinstance(poison.expect, DeadLettered)
    partition = min(await producer.partitions_for(topics.CHANNEL_EVENTS))
    offset: int | None = None
    stalled: list[str] | None = None
    try:
        with setting_up("a poison message with an ordinary event behind it on the same partition"):
            sent = await send(producer, poison.raw, headers=poison.headers, partition=partition, key=None)
            offset = sent.offset
            ordinary = corpus.event(corpus.ORDINARY[f"poison_{corpus.POISON.index(poison)}"], channel="12345")
            await send(producer, ordinary, partition=partition, key=None)
            stalled = await _unrouted_after(db, [case_id_for("12345", ordinary["event_id"])], seconds=6)
            letters = await db.dead_letters.find({"body_sha256": poison.sha256}).to_list()
    finally:
        if offset is not None and stalled != []:
            await _skip_past(fleet, endpoints, f"e2e-{database_name}.intake", partition, offset)
    seen = {"dead letters": [(letter["service"], letter["reason"]) for letter in letters],
            "event behind it stalled": bool(stalled)}
    assert seen == {"dead letters": [(poison.expect.service, poison.expect.reason)], "event behind it stalled": False}


async def _unrouted_after(db: Db, case_ids: list[str], seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while True:
        routed = {doc["_id"] async for doc in db.cases.find({"_id": {"$in": case_ids}, "status": "routed"})}
        waiting = [c for c in case_ids if c not in routed]
        if not waiting or time.monotonic() > deadline:
            return waiting
        await asyncio.sleep(0.5)


async def _skip_past(fleet: Fleet, endpoints: infra.Endpoints, group: str, partition: int, offset: int) -> None:
    """Stop intake, commit its group's offset past the poison, start it again."""
    intake = fleet["intake"]
    intake.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=endpoints.kafka_bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topics.CHANNEL_EVENTS, partition)
        consumer.assign([tp])
        await consumer.commit({tp: offset + 1})
    finally:
        await consumer.stop()
    intake.start()
    fleet.wait_healthy(names=["intake"])
