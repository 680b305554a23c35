"""The status feed's relay: every milestone of every case on `triage.case-updates.v1`, exactly once.

The services already say when a case moved: intake (received), routing (routed, routed again), the desks
(their actions, decided by the follow-up) and the follow-up's timers (escalated). The relay reads those
topics; for each event it reads the case's timeline from the store and publishes the milestones it finds
there that the feed does not carry yet (shared/domain/milestones.py: one per entry, ids from the entries').

Exactly once, across redeliveries, restarts and kill -9, by Kafka's transactions: a batch's new milestones
and the consumed offsets are committed together or not at all, and consumers of the feed read committed
records only. What the feed already carries is read back from the feed itself at start (read_committed), so
a batch redelivered after a crash finds its milestones there and publishes none of them twice. One relay
instance at a time (its transactional id fences a second one off).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from shared import topics
from shared.cloudevents import to_kafka
from shared.domain.milestones import milestones_of
from shared.events import CaseUpdated, Channel
from shared.handling import Source
from shared.metrics import FEED_MILESTONES
from shared.ports import Storage

log = logging.getLogger(__name__)
TRIGGERS = (topics.CASE_RECEIVED, topics.CASE_ROUTED, topics.DESK_ACTIONS, topics.CASE_ALERTS)
DECIDED = ("applied", "rejected")


def feed_key(event: CaseUpdated) -> bytes:
    """Keyed by the upstream channel: Kafka keeps one channel's updates in one partition, in order, and an
    upstream system reads that partition and the records with its own key."""
    return event.source_channel.value.encode()


FEED_SOURCE = "/triage/case-updates"  # the CloudEvents `source` of the feed's events


def feed_record(event: CaseUpdated, cloudevents: bool = False) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The record's value and headers: the event's JSON, or (for consumers that want them) a CloudEvent in
    binary mode, its attributes in `ce_*` headers and the same JSON as its data."""
    if cloudevents:
        message = to_kafka(event, source=FEED_SOURCE, mode="binary")
        return message.value, [(name, bytes(value)) for name, value in message.headers.items()]
    return event.model_dump_json(exclude_none=True).encode(), [("event-type", CaseUpdated.event_type.encode())]


class FeedRelay:
    def __init__(self, bootstrap: str, group_id: str, transactional_id: str, storage: Storage,
                 batch_records: int = 100, retry_seconds: float = 1.0, decision_wait_seconds: float = 120.0,
                 cloudevents: bool = False) -> None:
        self.bootstrap = bootstrap
        self.group_id = group_id
        self.storage = storage
        self.batch_records = batch_records
        self.retry_seconds = retry_seconds
        self.decision_wait_seconds = decision_wait_seconds
        self.cloudevents = cloudevents
        self.transactional_id = transactional_id
        self.published: set[str] = set()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None

    @property
    def consumer(self) -> AIOKafkaConsumer:
        assert self._consumer is not None, "start() first"
        return self._consumer

    @property
    def producer(self) -> AIOKafkaProducer:
        assert self._producer is not None, "start() first"
        return self._producer

    async def start(self) -> None:
        """Connect (aiokafka's clients belong to the running loop, so they are made here)."""
        self._consumer = AIOKafkaConsumer(*TRIGGERS, bootstrap_servers=self.bootstrap, group_id=self.group_id,
                                          enable_auto_commit=False, auto_offset_reset="earliest",
                                          isolation_level="read_committed")
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, transactional_id=self.transactional_id,
                                          enable_idempotence=True, acks="all")
        await self.producer.start()
        self.published = await self.carried()
        await self.consumer.start()
        log.info("feed relay started: the feed carries %d milestones", len(self.published))

    async def stop(self) -> None:
        for client in (self._consumer, self._producer):
            if client is not None:
                await client.stop()

    async def carried(self) -> set[str]:
        """The ids of every milestone the feed carries (committed), read from its beginning to its end."""
        reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                  isolation_level="read_committed", auto_offset_reset="earliest")
        await reader.start()
        try:
            # The producer's look-up waits for the topic's metadata (and creates the topic on a new broker).
            partitions = [TopicPartition(topics.CASE_UPDATES, p)
                          for p in sorted(await self.producer.partitions_for(topics.CASE_UPDATES))]
            reader.assign(partitions)
            await reader.seek_to_beginning(*partitions)
            ends = await reader.end_offsets(partitions)
            found: set[str] = set()
            while [tp for tp in partitions if await reader.position(tp) < ends[tp]]:
                for records in (await reader.getmany(timeout_ms=1000)).values():
                    found.update(_event_id(r.value) for r in records)
            found.discard("")
            return found
        finally:
            await reader.stop()

    async def run(self) -> None:
        """Relay batches until cancelled; a batch that fails is aborted, read again and tried again."""
        while True:
            batch = await self.consumer.getmany(timeout_ms=500, max_records=self.batch_records)
            if not batch:
                continue
            try:
                await self.relay(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("feed batch aborted, to be tried again: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(self.retry_seconds)
                await self._rewind(list(batch))

    async def relay(self, batch: Mapping[TopicPartition, list[ConsumerRecord[Any, Any]]]) -> int:
        """Publish the batch's new milestones with its offsets, in one transaction; how many were new."""
        new: dict[str, CaseUpdated] = {}
        for records in batch.values():
            for record in records:
                for update in await self.milestones(record):
                    if update.event_id not in self.published:
                        new.setdefault(update.event_id, update)
        async with self.producer.transaction():
            for update in new.values():
                value, headers = feed_record(update, self.cloudevents)
                await self.producer.send(topics.CASE_UPDATES, value, key=feed_key(update), headers=headers)
            await self.producer.send_offsets_to_transaction(
                {tp: records[-1].offset + 1 for tp, records in batch.items()}, self.group_id)
        self.published.update(new)
        for update in new.values():
            FEED_MILESTONES.labels(update.payload.milestone.value).inc()
        return len(new)

    async def milestones(self, record: ConsumerRecord[Any, Any]) -> list[CaseUpdated]:
        """The milestones of the case a trigger names, once what it announces is on the case's timeline."""
        event = _envelope(record.value)
        if event is None:
            return []  # not an event of ours: its own consumer dead-letters it
        case_id, event_id = event
        case = await self.storage.cases.get(case_id)  # its channel and ticket never change: read once
        if case is None:
            return []  # no such case: an action on it is refused, and nothing moved
        if record.topic == topics.DESK_ACTIONS:
            await self._decided(event_id, Source(record.topic, record.partition, record.offset).id)
        timeline = await self.storage.cases.timeline(case_id)  # after the decision: it holds what was decided
        return milestones_of(case.id, Channel(case.channel), case.external_ref, timeline)

    async def _decided(self, action_id: str, letter_id: str) -> None:
        """A desk action is on the timeline once the follow-up has decided it: wait for that, unless the
        follow-up dead-lettered it (then it is never decided), and only for a while (the case's next event
        brings what a give-up missed)."""
        delay, waited = 0.1, 0.0
        while waited < self.decision_wait_seconds:
            record = await self.storage.actions.get(action_id)
            if record is not None and record.get("outcome") in DECIDED:
                return
            if await self.storage.dead_letters.has(letter_id):
                return
            await asyncio.sleep(delay)
            waited, delay = waited + delay, min(delay * 2, 2.0)
        log.warning("desk action %s not decided after %.0f s: the feed goes on without it", action_id, waited)

    async def _rewind(self, partitions: list[TopicPartition]) -> None:
        """Back to the last committed offsets, so the aborted batch is read again."""
        for tp in partitions:
            committed = await self.consumer.committed(tp)
            if committed is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, committed)


def _envelope(value: bytes | None) -> tuple[str, str] | None:
    try:
        body = json.loads(value or b"")
        case_id, event_id = body["case_id"], body["event_id"]
    except (ValueError, TypeError, KeyError):
        return None
    return (case_id, event_id) if isinstance(case_id, str) and isinstance(event_id, str) else None


def _event_id(value: bytes | None) -> str:
    found = _envelope(value)
    return found[1] if found else ""
