"""A service consumes batches: each case's events in order, a bad event dead-lettered alone, the batch
acknowledged once every record is done. On FastStream's in-memory broker, with a fake store."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiokafka import ConsumerRecord
from faststream.kafka import TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from shared import topics
from shared.adapters.memory import MemoryStorage
from shared.config import Settings
from shared.handling import Rejected
from shared.runtime import Service, _readable_headers


async def test_a_batch_runs_every_case_and_dead_letters_only_the_bad_event() -> None:
    service = Service("unit-batch", Settings(dev_mode=True, batch_concurrency=4))
    storage = MemoryStorage()
    service.storage = storage  # type: ignore[assignment]
    done: list[bytes] = []
    letters: list[bytes] = []

    async def work(body: bytes) -> None:
        if body.startswith(b"bad"):
            raise Rejected("malformed_json", "not JSON")
        await asyncio.sleep(0.01 if body.endswith(b"1") else 0)  # the first of a case is slow: order must hold
        done.append(body)

    @service.subscriber("unit.batch", title="unit")
    async def handle(message: KafkaMessage) -> None:
        await service.process(message, work)

    @service.broker.subscriber(topics.DEAD_LETTER)
    async def dead(body: bytes) -> None:
        letters.append(body)

    async with TestKafkaBroker(service.broker) as broker:
        for body, key in [(b"a1", b"A"), (b"b1", b"B"), (b"bad", b"C"), (b"a2", b"A"), (b"b2", b"B")]:
            await broker.publish(body, "unit.batch", key=key)
        await broker.publish_batch(b"c1", b"bad-too", b"c2", topic="unit.batch")

    assert done.index(b"a1") < done.index(b"a2") and done.index(b"b1") < done.index(b"b2")
    assert sorted(done) == [b"a1", b"a2", b"b1", b"b2", b"c1", b"c2"]
    assert sorted(letters) == [b"bad", b"bad-too"]
    assert all(record["reason"] == "malformed_json" for record in storage.dead_letters.stored.values())


def record(value: bytes, key: bytes | None, offset: int, partition: int = 0) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("unit.batch", partition, offset, 0, 0, key, value, None, 0, len(value), [])


async def test_cases_of_one_batch_run_side_by_side_and_each_case_in_order() -> None:
    service = Service("unit-batch", Settings(dev_mode=True, batch_concurrency=8))
    running, most, done = 0, 0, []

    async def work(body: bytes) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.02 if body.endswith(b"1") else 0)
        running -= 1
        done.append(body)

    batch = [record(b"a1", b"A", 0), record(b"b1", b"B", 1), record(b"a2", b"A", 2), record(b"c1", b"C", 3),
             record(b"b2", b"B", 4), record(b"a3", b"A", 5)]
    await service.process(SimpleNamespace(raw_message=tuple(batch)), work)  # type: ignore[arg-type]

    assert most == 3  # cases A, B and C at once, never two events of one case
    assert [b for b in done if b.startswith(b"a")] == [b"a1", b"a2", b"a3"]
    assert [b for b in done if b.startswith(b"b")] == [b"b1", b"b2"]


async def test_no_more_cases_at_once_than_the_concurrency() -> None:
    service = Service("unit-batch", Settings(dev_mode=True, batch_concurrency=2))
    running, most = 0, 0

    async def work(body: bytes) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.005)
        running -= 1

    batch = tuple(record(f"e{i}".encode(), f"case-{i}".encode(), i) for i in range(10))
    await service.process(SimpleNamespace(raw_message=batch), work)  # type: ignore[arg-type]
    assert most == 2


async def test_a_failing_batch_fails_only_once_every_case_in_it_has_stopped() -> None:
    # FastStream rewinds a failed batch for redelivery: no case of it may still be running here by then.
    service = Service("unit-batch", Settings(dev_mode=True, batch_concurrency=4))
    finished: list[bytes] = []

    async def work(body: bytes) -> None:
        if body == b"poison":
            raise Rejected("malformed_json", "not JSON")
        await asyncio.sleep(0.05)
        finished.append(body)

    async def dead_letter_refused(*_args: object) -> None:
        raise RuntimeError("the dead-letter topic refused the record")

    service.dead_letter = dead_letter_refused  # type: ignore[method-assign]
    batch = (record(b"poison", b"A", 0), record(b"slow", b"B", 1))
    with pytest.raises(RuntimeError):
        await service.process(SimpleNamespace(raw_message=batch), work)  # type: ignore[arg-type]
    assert finished == [b"slow"]


def test_header_values_that_are_missing_or_not_utf8_are_replaced() -> None:
    raw = ConsumerRecord("t", 0, 0, 0, 0, None, b"{}", None, 0, 2, [("a", None), ("b", b"\xff"), ("c", b"ok")])
    cleaned = _readable_headers(raw)
    assert cleaned.headers == [("a", b""), ("b", "\ufffd".encode()), ("c", b"ok")]
    assert cleaned.value == raw.value and cleaned.offset == raw.offset
    readable = record(b"{}", b"k", 1)
    assert _readable_headers(readable) is readable
