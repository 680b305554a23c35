"""What the feed carries: the ids of its committed milestones, read from its beginning and followed on.

Every instance follows the whole feed (read_committed), so its set grows with what the other instances commit
too. The relay asks `catch_up()` after it has taken a group over: it returns once the set holds every record
committed before that moment (up to the high watermark read then), which includes whatever the group's former
holder committed, since taking the group over fenced it and completed or aborted its open transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared import topics

log = logging.getLogger(__name__)


class FeedTail:
    def __init__(self, bootstrap: str, topic: str = topics.CASE_UPDATES, catch_up_seconds: float = 120.0) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.catch_up_seconds = catch_up_seconds
        self.ids: set[str] = set()
        self.partitions: list[TopicPartition] = []
        self._positions: dict[TopicPartition, int] = {}
        self._reader: AIOKafkaConsumer | None = None  # read_committed: what the feed carries
        self._marker: AIOKafkaConsumer | None = None  # read_uncommitted: its high watermarks
        self._following: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Read the feed to its end, and follow it from there on."""
        # A producer's look-up waits for the topic's metadata (and creates the topic on a new broker).
        lookup = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
        await lookup.start()
        try:
            self.partitions = [TopicPartition(self.topic, p) for p in sorted(await lookup.partitions_for(self.topic))]
        finally:
            await lookup.stop()
        self._reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                        isolation_level="read_committed", auto_offset_reset="earliest")
        self._marker = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                        isolation_level="read_uncommitted")
        await self._reader.start()
        await self._marker.start()
        self._reader.assign(self.partitions)
        await self._reader.seek_to_beginning(*self.partitions)
        self._following = asyncio.create_task(self._follow(), name="feed-tail")
        await self.catch_up()

    async def stop(self) -> None:
        if self._following is not None:
            self._following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._following
        for client in (self._reader, self._marker):
            if client is not None:
                await client.stop()

    async def catch_up(self) -> None:
        """Return once every milestone committed before this call is in `ids`."""
        assert self._marker is not None, "start() first"
        ends = await self._marker.end_offsets(self.partitions)  # high watermarks: committed or not
        deadline = time.monotonic() + self.catch_up_seconds
        while behind := [tp for tp in self.partitions if self._positions.get(tp, -1) < ends[tp]]:
            if self._following is None or self._following.done():
                raise RuntimeError("the feed is not followed")
            if time.monotonic() > deadline:  # an open transaction holds the feed back for too long
                raise TimeoutError(f"the feed's committed records not read to {ends} ({behind})")
            await asyncio.sleep(0.05)

    async def _follow(self) -> None:
        assert self._reader is not None
        while True:
            try:
                for records in (await self._reader.getmany(timeout_ms=200, max_records=5000)).values():
                    self.ids.update(_event_id(record.value) for record in records)
                for tp in self.partitions:
                    self._positions[tp] = await self._reader.position(tp)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broker away for a while: the reader reconnects by itself
                log.warning("following the feed failed, trying again: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(1.0)
            self.ids.discard("")


def _event_id(value: bytes | None) -> str:
    try:
        event_id = json.loads(value or b"")["event_id"]
    except (ValueError, TypeError, KeyError):
        return ""
    return event_id if isinstance(event_id, str) else ""
