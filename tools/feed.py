"""`triage feed [--channel C] [--follow]`: the status feed as an upstream system reads it (committed records
only), one JSON line per milestone; `--channel` keeps the records keyed with that channel, as an upstream
system keeps its own."""

from __future__ import annotations

import json
import sys

from aiokafka import AIOKafkaConsumer

from shared import topics


async def read_feed(bootstrap: str, channel: str | None, follow: bool) -> int:
    consumer = AIOKafkaConsumer(topics.CASE_UPDATES, bootstrap_servers=bootstrap, isolation_level="read_committed",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    shown = 0
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=2000)
            if not batch and not follow:
                return shown
            for records in batch.values():
                for record in records:
                    if channel is None or record.key == channel.encode():
                        update = json.loads(record.value)
                        sys.stdout.write(json.dumps(update, ensure_ascii=False) + "\n")
                        shown += 1
            sys.stdout.flush()
    finally:
        await consumer.stop()
