"""The desks' queue on MongoDB: each unit's entries in SHARDS shards, every document read by `_id`, the one
lookup FerretDB (v1, on SQLite) indexes. Measured there on 100,000 documents: a find by `_id` 1.5 ms; a range
or `$in` on `_id`, or any other filter with a sort, 2.3-2.6 s (whole-collection scans). So a desk's page reads
its unit's shards concurrently, by `_id`, and cuts the page in memory (shared/domain/queue.py).

Each shard is a log of revisions, `desk_queue_log` `<shard>@<n>`, with a snapshot every SNAPSHOT_EVERY
revisions in `desk_queue` (shardlog.py says why and how). An entry is put at its case's version, so an older
copy never replaces a newer one, and a page polled every few seconds costs a lookup per shard.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from shared.adapters.mongo.ferretdb import Document, GroupCommit
from shared.adapters.mongo.shardlog import ShardLog, case_key, field_key
from shared.domain.lifecycle import CaseStatus
from shared.domain.queue import QueueEntry
from shared.domain.triage import Category, Unit, Urgency

log = logging.getLogger(__name__)

# Few enough that a cold page is 32 reads by `_id` made at once; enough that a snapshot stays small (about 300
# entries, ~37 kB, at 10,000 open cases in a unit).
SHARDS = 32
SNAPSHOT_EVERY = 16  # revisions between a shard's snapshots: what a cold reader replays at most, about


def shard_of(case_id: str) -> int:
    """A case's shard, the same in every process and every run (Python's `hash` of a str is not)."""
    return int.from_bytes(hashlib.blake2b(case_id.encode(), digest_size=8).digest(), "big") % SHARDS


def shard_id(unit: Unit, shard: int) -> str:
    return f"{unit.value}:{shard:02d}"


def entry_document(entry: QueueEntry) -> str:
    """An entry as a positional JSON array: what orders and filters the queue, no more. A shard is read whole
    for every page and rewritten whole at every write, so each byte saved here is paid thousands of times. The
    excerpt is left out: the rows shown are read from their cases anyway (MongoDeskReads.verify)."""
    e = entry
    return json.dumps([e.version, e.status.value, e.urgency.value if e.urgency else None,
                       e.category.value if e.category else None, e.channel, int(e.overdue), int(e.needs_review),
                       e.external_ref, round(e.received_at.timestamp(), 3), e.due.isoformat() if e.due else None,
                       e.rule], ensure_ascii=False, separators=(",", ":"))


def entry_from_document(key: str, unit: Unit, value: str) -> QueueEntry:
    """The entry back; the enums and dates are checked as they are read."""
    v, status, urgency, category, channel, overdue, review, ref, received, due, rule = json.loads(value)
    return QueueEntry(
        case_id=case_key(key), version=int(v), unit=unit, status=CaseStatus(status),
        urgency=Urgency(urgency) if urgency else None, category=Category(category) if category else None,
        channel=str(channel), overdue=bool(overdue), needs_review=bool(review),
        external_ref=str(ref) if ref is not None else None, received_at=datetime.fromtimestamp(received, UTC),
        due=date.fromisoformat(due) if due else None, rule=str(rule) if rule is not None else None, excerpt="")


class MongoDeskQueue:
    def __init__(self, shards: AsyncCollection[Document], changes: AsyncCollection[Document],
                 commit: GroupCommit | None = None) -> None:
        self.shards = shards
        self.log = changes
        self.book = ShardLog(shards, changes, SNAPSHOT_EVERY, commit)
        self._decoded: dict[str, dict[str, tuple[str, QueueEntry]]] = {}  # shard → key → (stored text, entry)

    async def entries(self, unit: Unit) -> list[QueueEntry]:
        shards = [shard_id(unit, s) for s in range(SHARDS)]
        states = await asyncio.gather(*(self.book.current(shard) for shard in shards))
        found: list[QueueEntry] = []
        for shard, state in zip(shards, states, strict=True):
            found.extend(self._decode(unit, shard, state.cases))
        return found

    def _decode(self, unit: Unit, shard: str, cases: Mapping[str, Any]) -> list[QueueEntry]:
        """The shard's entries, each decoded once per process while its stored text is unchanged: a desk's
        page is read every few seconds, and most of a shard has not changed since the last read."""
        before = self._decoded.get(shard, {})
        now: dict[str, tuple[str, QueueEntry]] = {}
        for key, raw in cases.items():
            known = before.get(key)
            if known is not None and known[0] == raw:
                now[key] = known
                continue
            try:
                now[key] = (raw, entry_from_document(key, unit, raw))
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                log.warning("queue entry %s of %s cannot be read, left out: %s", key, unit.value, exc)
        self._decoded[shard] = now
        return [entry for _, entry in now.values()]

    async def put(self, entry: QueueEntry) -> None:
        change = {"key": field_key(entry.case_id), "op": "put", "v": entry.version, "entry": entry_document(entry)}
        await self.book.change(shard_id(entry.unit, shard_of(entry.case_id)), change)

    async def remove(self, case_id: str, unit: Unit, version: int) -> None:
        await self.book.change(shard_id(unit, shard_of(case_id)), {"key": field_key(case_id), "op": "remove",
                                                                   "v": version})
