"""`triage feed [--channel C] [--follow]`: the status feed as an upstream system reads it (committed records
only), one JSON line per milestone; `--channel` keeps the records keyed with that channel, as an upstream
system keeps its own."""

from __future__ import annotations

import json
import sys

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from shared import topics


async def read_feed(bootstrap: str, channel: str | None, follow: bool) -> int:
    """Print the feed from its beginning: to its end, or (`follow`) on as milestones arrive."""
    consumer = AIOKafkaConsumer(topics.CASE_UPDATES, bootstrap_servers=bootstrap, isolation_level="read_committed",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    shown = 0

    def show(batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        nonlocal shown
        for records in batch.values():
            for record in records:
                if channel is None or record.key == (channel or "").encode():
                    sys.stdout.write(json.dumps(json.loads(record.value or b"{}"), ensure_ascii=False) + "\n")
                    shown += 1
        sys.stdout.flush()

    try:
        for _ in range(40):  # without a group, every partition is assigned once the metadata is in
            show(await consumer.getmany(timeout_ms=250))
            if consumer.assignment():
                break
        partitions = list(consumer.assignment())
        if not partitions:
            return shown  # nothing published yet
        ends = await consumer.end_offsets(partitions)
        while follow or [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            show(await consumer.getmany(timeout_ms=1000))
        return shown
    finally:
        await consumer.stop()
