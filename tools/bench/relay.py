"""The raw transport and the store-bound reference: the pipeline's hops with no work, or with only their
cases' store work.

Each hop is its own consumer group and its own acks=all producer, configured like a service's, and commits only
what it has published. The relays run in this process with aiokafka, over fresh topics made for the run and
deleted after it; the store-bound reference's documents go to a fresh database, dropped after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from tools.bench.figures import STALL_SECONDS, cpu_profile
from tools.bench.machine import Processes
from tools.bench.result import Phase

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.structs import ConsumerRecord

    from shared.events import ChannelEvent

WARMUP_PREFIX = b"warm-up-"  # the keys of the relays' warm-up records
Work = Callable[[Sequence["ConsumerRecord[bytes, bytes]"]], Awaitable[None]]


class StoreWork:
    """The store work a hop of the pipeline cannot do without, one command per case per hop: the first hop
    inserts the case's document, each later one updates it by _id (the store's cheapest lookup). The hops
    keep as many commands in flight as the four services do together (FerretDB stops answering when too
    many updates wait at once: shared/adapters/mongo/ferretdb.py)."""

    def __init__(self, mongodb: str, database: str, in_flight: int) -> None:
        from pymongo import AsyncMongoClient

        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb, tz_aware=True,
                                                                         maxPoolSize=in_flight)
        self.database = database
        self.cases = self.client[database]["cases"]

    async def hop(self, index: int, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        await asyncio.gather(*(self._one(index, record) for record in records))

    async def _one(self, index: int, record: ConsumerRecord[bytes, bytes]) -> None:
        from pymongo.errors import DuplicateKeyError

        case_id = (record.key or b"").decode()
        if index == 0:
            with contextlib.suppress(DuplicateKeyError):  # a redelivered record: the case is already there
                await self.cases.insert_one({"_id": case_id, "event": (record.value or b"").decode(), "hops": 0})
        else:
            await self.cases.update_one({"_id": case_id}, {"$set": {f"hop{index}": time.time()}, "$inc": {"hops": 1}})

    async def close(self) -> None:
        try:
            await self.client.drop_database(self.database)
        finally:
            await self.client.close()


class Relay:
    """One hop: consume, do the work if any, publish to the next topic, commit once the publish is
    acknowledged."""

    def __init__(self, kafka: str, source: str, dest: str, group: str, per_message: bool,
                 work: Work | None = None) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        self.dest = dest
        self.per_message = per_message
        self.work = work
        self.consumer = AIOKafkaConsumer(source, bootstrap_servers=kafka, group_id=group, client_id=group,
                                         enable_auto_commit=False, auto_offset_reset="earliest")
        self.producer = AIOKafkaProducer(bootstrap_servers=kafka, client_id=group, acks="all")
        self.relayed = 0

    async def start(self) -> None:
        await self.producer.start()
        await self.consumer.start()

    async def stop(self) -> None:
        try:
            await self.consumer.stop()
        finally:
            await self.producer.stop()

    def assigned(self) -> int:
        return len(self.consumer.assignment())

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            batches = await self.consumer.getmany(timeout_ms=100, max_records=1000)
            if not batches:
                continue
            if self.per_message:  # publish, await the ack, commit, next
                for tp, records in batches.items():
                    for record in records:
                        if self.work is not None:
                            await self.work([record])
                        await (await self.producer.send(self.dest, record.value, key=record.key))
                        await self.consumer.commit({tp: record.offset + 1})
                        self.relayed += 1
                continue
            if self.work is not None:
                await self.work([record for records in batches.values() for record in records])
            pending = [await self.producer.send(self.dest, record.value, key=record.key)
                       for records in batches.values() for record in records]
            await asyncio.gather(*pending)
            await self.consumer.commit()  # the positions just past the batch, all of it acknowledged
            self.relayed += len(pending)


async def _create_topics(admin: AIOKafkaAdminClient, names: list[str], partitions: int) -> None:
    from aiokafka.admin import NewTopic

    response = await admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    failed = [entry for entry in getattr(response, "topic_errors", []) if entry[1] != 0]
    if failed:
        raise RuntimeError(f"creating the benchmark topics failed: {failed}")
    # Every partition led before a client asks for offsets, or aiokafka warns and retries.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        described = await admin.describe_topics(names)
        if len(described) == len(names) and all(
            topic["error_code"] == 0 and len(topic["partitions"]) == partitions
            and all(p["error_code"] == 0 and p["leader"] >= 0 for p in topic["partitions"])
            for topic in described
        ):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the benchmark topics have no leaders after 30s: {names}")


async def _wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {timeout}s")
        await asyncio.sleep(0.05)


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """While new topics settle their leaders aiokafka logs refusals as errors and retries; a real failure
    still ends the setup, by a timeout."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


async def _warm_up(producer: AIOKafkaProducer, reader: AIOKafkaConsumer, topic: str, timeout: float = 60) -> None:
    """Relay a few records end to end first, enough keys to touch every partition of every hop (60 keys miss
    one of 6 partitions with odds of 1 in 10,000): every leader known, every fetch position set."""
    keys = {f"{WARMUP_PREFIX.decode()}{i}".encode() for i in range(60)}
    await asyncio.gather(*[await producer.send(topic, b"{}", key=key) for key in keys])
    deadline = time.monotonic() + timeout
    while keys and time.monotonic() < deadline:
        for records in (await reader.getmany(timeout_ms=200)).values():
            keys.difference_update(record.key for record in records)
    if keys:
        raise TimeoutError(f"{len(keys)} warm-up records did not come through the relays in {timeout}s")


async def _read_final(consumer: AIOKafkaConsumer, expected: int, published: asyncio.Event,
                      timeout: float) -> tuple[set[bytes], float]:
    """Read the last topic until every key has come through; the newest record timestamp seen."""
    seen: set[bytes] = set()
    last_ms = 0.0
    deadline = time.monotonic() + timeout
    last_new = time.monotonic()
    while len(seen) < expected and time.monotonic() < deadline:
        batches = await consumer.getmany(timeout_ms=200, max_records=5000)
        for records in batches.values():
            for record in records:
                if record.key is not None and record.key not in seen and not record.key.startswith(WARMUP_PREFIX):
                    seen.add(record.key)
                    last_ms = max(last_ms, float(record.timestamp))
                    last_new = time.monotonic()
        if published.is_set() and time.monotonic() - last_new > STALL_SECONDS:
            break
    return seen, last_ms


async def measure_raw(kafka: str, events: list[ChannelEvent], *, hops: int, partitions: int,
                      per_message: bool = False, processes: Processes | None = None, store: StoreWork | None = None,
                      timeout: float = 600) -> tuple[Phase, dict[str, Any]]:
    """The events through `hops` relays, timed from the first publish to the last arrival; with `store`, each
    hop does its cases' store work too (and the store's CPU is counted with the broker's and ours)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient

    measured = ["bench", "kafka", *(["ferretdb"] if store else [])]
    run = uuid.uuid4().hex[:8]
    names = [f"triage.bench-{run}.hop{i}.v1" for i in range(hops + 1)]
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka, client_id=f"bench-{run}-admin")
    await admin.start()
    relays: list[Relay] = []
    tasks: list[asyncio.Task[None]] = []
    stop = asyncio.Event()
    reader = AIOKafkaConsumer(names[-1], bootstrap_servers=kafka, group_id=None, auto_offset_reset="earliest")
    producer = AIOKafkaProducer(bootstrap_servers=kafka, client_id=f"bench-{run}-source", acks="all")
    try:
        with _quiet("aiokafka"):
            await _create_topics(admin, names, partitions)
        relays = [Relay(kafka, names[i], names[i + 1], f"bench-{run}-hop{i}", per_message,
                        functools.partial(store.hop, i) if store else None) for i in range(hops)]
        with _quiet("aiokafka"):
            for relay in relays:
                await relay.start()
            tasks = [asyncio.create_task(relay.run(stop), name=f"relay-{i}") for i, relay in enumerate(relays)]
            # Every hop owns all its partitions before the clock starts: the group joins are not the transport.
            await _wait_until(lambda: all(r.assigned() == partitions for r in relays), 60, "relay groups not joined")
            await reader.start()
            await _wait_until(lambda: len(reader.assignment()) == partitions, 60, "final reader not assigned")
            await producer.start()
        with _quiet("aiokafka"):
            await _warm_up(producer, reader, names[0])

        cpu_before = processes.cpu(measured) if processes else {}
        published = asyncio.Event()
        reading = asyncio.create_task(_read_final(reader, len(events), published, timeout))
        first_ms = time.time() * 1000
        pending = [await producer.send(names[0], event.model_dump_json().encode(), key=event.event_id.encode())
                   for event in events]
        await asyncio.gather(*pending)
        published.set()
        seen, last_ms = await reading
        cpu_after = processes.cpu(measured) if processes else {}
    finally:
        stop.set()
        for task in tasks:
            with contextlib.suppress(Exception):
                await task
        for relay in relays:
            with contextlib.suppress(Exception):
                await relay.stop()
        with contextlib.suppress(Exception):
            await reader.stop()
        with contextlib.suppress(Exception):
            await producer.stop()
        with contextlib.suppress(Exception):
            await admin.delete_topics(names)
        await admin.close()
    phase = Phase(len(events), len(seen), first_ms, last_ms or first_ms)
    return phase, {"cpu": cpu_profile(cpu_before, cpu_after, len(seen), phase.wall_s)}


