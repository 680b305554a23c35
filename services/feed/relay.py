"""The status feed's relay: every milestone of every case on `triage.case-updates.v1`, exactly once, with any
number of instances.

The services already say when a case moved: intake (received), routing (routed, routed again), the desks
(their actions, decided by the follow-up) and the follow-up's timers (escalated). The relay reads those
topics; for each event it reads the case's timeline from the store and publishes the milestones it finds
there that the feed does not carry yet (shared/domain/milestones.py: one per entry, ids from the entries').

Exactly once, by Kafka's transactions and one writer per case:

- A trigger does not publish "its" milestone but every milestone of the case's timeline the feed lacks, so
  offsets and transactions alone would not keep a milestone single: two instances relaying two triggers of one
  case would each publish the case's earlier milestones. So every case has one writer at a time. The trigger
  topics are keyed by case id; groups.py puts all of a case's partitions in one partition group and gives each
  group whole to one instance.
- Each group is written by a transactional producer of its own, `<group id>.relay.<k>`, started when the group
  is assigned: starting it fences whoever held the group before (a zombie: an instance that was stopped, hung
  or cut off) and completes or aborts its open transaction. A group's milestones and its partitions' offsets
  are committed in one of its transactions or not at all; consumers of the feed read committed records only.
- What the feed carries (`published`) is read from the feed itself, from its beginning, and followed on
  (carried.py). After fencing a group's former holder the relay reads the feed up to that moment before it
  relays the group: the set then holds everything ever committed for the group's cases, by anyone. The only
  writer of the group from then on is this instance, which adds what it commits. So a redelivered batch, or a
  trigger after one relayed elsewhere, finds its milestones there and publishes none of them twice.
- A batch that fails (the broker away, the store away, an outcome unknown, the producer fenced) is aborted and
  its producer dropped: the group's next batch starts a new producer, which fences the old one, and reads the
  feed again, so a commit whose answer was lost is not repeated. The batch is read again from the group's
  committed offsets. An instance that was fenced because it lost the group fences the new holder back at most
  until its consumer learns of the rebalance; each takeover reads the feed first, so this costs time, not
  duplicates.

Not KIP-447: aiokafka's `send_offsets_to_transaction(offsets, group_id)` carries no consumer generation, so the
fencing is by transactional id, one per group, as before Kafka 2.5.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition

from services.feed.carried import FeedTail
from services.feed.groups import GroupAssignor, group_of, relay_transactional_id
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
Batch = Mapping[TopicPartition, list[ConsumerRecord[Any, Any]]]


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
    def __init__(self, bootstrap: str, group_id: str, storage: Storage, batch_records: int = 100,
                 retry_seconds: float = 1.0, decision_wait_seconds: float = 120.0, cloudevents: bool = False) -> None:
        self.bootstrap = bootstrap
        self.group_id = group_id
        self.storage = storage
        self.batch_records = batch_records
        self.retry_seconds = retry_seconds
        self.decision_wait_seconds = decision_wait_seconds
        self.cloudevents = cloudevents
        self.tail = FeedTail(bootstrap)
        self.assignor = GroupAssignor()
        self._consumer: AIOKafkaConsumer | None = None
        self._producers: dict[int, AIOKafkaProducer] = {}  # by group, for the groups held
        self._turn = asyncio.Lock()  # a batch, or a rebalance's opening or closing of producers

    @property
    def published(self) -> set[str]:
        """The ids of the milestones the feed carries (committed), as far as this instance knows."""
        return self.tail.ids

    @property
    def consumer(self) -> AIOKafkaConsumer:
        assert self._consumer is not None, "start() first"
        return self._consumer

    def transactional_id(self, group: int) -> str:
        return relay_transactional_id(self.group_id, group)

    async def start(self) -> None:
        """Connect (aiokafka's clients belong to the running loop, so they are made here)."""
        await self.tail.start()
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=self.group_id,
                                          enable_auto_commit=False, auto_offset_reset="earliest",
                                          isolation_level="read_committed",
                                          partition_assignment_strategy=(self.assignor,))
        self.consumer.subscribe(TRIGGERS, listener=_Rebalance(self))
        await self.consumer.start()
        log.info("feed relay started: the feed carries %d milestones", len(self.published))

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()  # revokes the groups: their producers are closed
        for group in list(self._producers):
            await self._close(group)
        await self.tail.stop()

    async def run(self) -> None:
        """Relay batches until cancelled; a group's batch that fails is aborted, read again and tried again."""
        while True:
            batch = await self.consumer.getmany(timeout_ms=500, max_records=self.batch_records)
            if not batch:
                continue
            async with self._turn:
                failed = await self.relay(batch)
            if failed:
                await asyncio.sleep(self.retry_seconds)
                await self._rewind(failed)

    async def relay(self, batch: Batch) -> list[TopicPartition]:
        """Relay the batch group by group, each in a transaction of its own; the partitions of the groups whose
        transaction failed (aborted, their producer dropped)."""
        by_group: dict[int, dict[TopicPartition, list[ConsumerRecord[Any, Any]]]] = {}
        held = self.consumer.assignment()  # a partition revoked since the fetch is its new holder's now
        for tp, records in batch.items():
            if tp not in held:
                continue
            by_group.setdefault(group_of(tp, self.assignor.groups), {})[tp] = records
        outcomes = await asyncio.gather(*(self.relay_group(group, part) for group, part in by_group.items()),
                                        return_exceptions=True)
        failed: list[TopicPartition] = []
        for (group, part), outcome in zip(by_group.items(), outcomes, strict=True):
            if isinstance(outcome, asyncio.CancelledError):
                raise outcome
            if isinstance(outcome, BaseException):
                log.warning("feed batch aborted, to be tried again: %s: %s", type(outcome).__name__, outcome,
                            extra={"group": group})
                await self._close(group)  # the next try fences this producer and reads the feed again
                failed.extend(part)
        return failed

    async def relay_group(self, group: int, batch: Batch) -> int:
        """Publish the new milestones of a group's batch with its offsets, in one transaction; how many."""
        producer = await self._open(group)  # first: a takeover reads the feed before anything is compared with it
        new: dict[str, CaseUpdated] = {}
        for records in batch.values():
            for record in records:
                for update in await self.milestones(record):
                    if update.event_id not in self.published:
                        new.setdefault(update.event_id, update)
        async with producer.transaction():
            for update in new.values():
                value, headers = feed_record(update, self.cloudevents)
                await producer.send(topics.CASE_UPDATES, value, key=feed_key(update), headers=headers)
            await producer.send_offsets_to_transaction(
                {tp: records[-1].offset + 1 for tp, records in batch.items()}, self.group_id)
        self.published.update(new)
        for update in new.values():
            FEED_MILESTONES.labels(update.payload.milestone.value).inc()
        return len(new)

    async def _open(self, group: int) -> AIOKafkaProducer:
        """The group's producer; a new one fences the group's former holder, then the feed is read up to then."""
        if group in self._producers:
            return self._producers[group]
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, transactional_id=self.transactional_id(group),
                                    enable_idempotence=True, acks="all")
        try:
            await producer.start()  # InitProducerId: the fencing
            await self.tail.catch_up()
        except BaseException:
            await producer.stop()
            raise
        self._producers[group] = producer
        return producer

    async def _close(self, group: int) -> None:
        producer = self._producers.pop(group, None)
        if producer is not None:
            try:
                await producer.stop()
            except Exception as exc:  # a fenced or failed producer: nothing of it is committed any more
                log.info("closing the feed producer of group %d: %s: %s", group, type(exc).__name__, exc)

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        groups = sorted({group_of(tp, self.assignor.groups) for tp in assigned})
        log.info("feed relay holds groups %s of %d", groups, self.assignor.groups)
        async with self._turn:
            for group in groups:
                try:
                    await self._open(group)
                except Exception as exc:  # the group's first batch tries again
                    log.warning("taking feed group %d over failed: %s: %s", group, type(exc).__name__, exc)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._turn:  # the batch in flight committed or aborted first
            for group in list(self._producers):
                await self._close(group)

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
        """Back to the last committed offsets, so the aborted batch is read again (by whoever holds it now)."""
        held = self.consumer.assignment()
        for tp in partitions:
            if tp not in held:
                continue
            committed = await self.consumer.committed(tp)
            if committed is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, committed)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, relay: FeedRelay) -> None:
        self.relay = relay

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.relay.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.relay.on_assigned(assigned)


def _envelope(value: bytes | None) -> tuple[str, str] | None:
    try:
        body = json.loads(value or b"")
        case_id, event_id = body["case_id"], body["event_id"]
    except (ValueError, TypeError, KeyError):
        return None
    return (case_id, event_id) if isinstance(case_id, str) and isinstance(event_id, str) else None
