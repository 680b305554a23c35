"""The desks' queue on MongoDB: each unit's entries in SHARDS shards, every document read by `_id`, the one
lookup FerretDB (v1, on SQLite) indexes. Measured there on 100,000 documents: a find by `_id` 1.5 ms; a range
or `$in` on `_id`, or any other filter with a sort, 2.3-2.6 s (whole-collection scans). So a desk's page reads
its unit's shards concurrently, by `_id`, and cuts the page in memory (shared/domain/queue.py).

A shard is a log of revisions, `desk_queue_log` `<shard>@<n>`: the changes (puts and removes) that take it
from revision n to n+1. FerretDB applies an update by reading a document and writing it back whole, so two
updates of one document at once lose one (measured: 200 concurrent `$set`s of 200 keys of one document kept
27), whatever the update's filter says. What it does do atomically is refuse a second insert of one `_id`:
the writer that inserts `<shard>@<n>` owns revision n, and every other writer of the shard sees the duplicate,
catches up and tries n+1. Log records are small and never rewritten, and they are never deleted, so a shard's
state is exactly its records in order (they grow with the case saves, like the cases' own timelines).

Every SNAPSHOT_EVERY revisions, the writer of that revision also writes the whole shard, `desk_queue` `{"_id":
<shard>, "rev": n, "cases": {<key>: "<entry as a JSON array>"}}` (the state before record n), so a reader
starting cold replays a few records, not the whole history. A snapshot that loses a race to an older one is
harmless: the records after it are still there. Each process keeps the shards it has read and catches them up
with one lookup of the next record, so a write costs a lookup and an insert, and a page polled every few
seconds costs a lookup per shard. Within a process, the changes of one shard wait in line and go as one
revision (a group commit). The same code is correct on MongoDB (where it is merely more careful than needed).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from shared.adapters.mongo.ferretdb import Document, GroupCommit, KeyedLocks
from shared.domain.lifecycle import CaseStatus
from shared.domain.queue import QueueEntry
from shared.domain.triage import Category, Unit, Urgency
from shared.handling import Contended

log = logging.getLogger(__name__)

# Few enough that a cold page is 32 reads by `_id` made at once; enough that a snapshot stays small (about 300
# entries, ~37 kB, at 10,000 open cases in a unit).
SHARDS = 32
SNAPSHOT_EVERY = 16  # revisions between a shard's snapshots: what a cold reader replays at most, about
CATCH_UP = 2 * SNAPSHOT_EVERY  # records a cached shard replays before it looks for a newer snapshot instead
ATTEMPTS = 200  # a writer that loses the race for a revision this often gives up (Contended: retried later)

_UNSAFE = {"%": "%25", ".": "%2E", "$": "%24"}
_SAFE = {v: k for k, v in _UNSAFE.items()}


def shard_of(case_id: str) -> int:
    """A case's shard, the same in every process and every run (Python's `hash` of a str is not)."""
    return int.from_bytes(hashlib.blake2b(case_id.encode(), digest_size=8).digest(), "big") % SHARDS


def shard_id(unit: Unit, shard: int) -> str:
    return f"{unit.value}:{shard:02d}"


def field_key(case_id: str) -> str:
    """A case id as a field name: no dot (a path) and no dollar (an operator); reversible."""
    return re.sub(r"[%.$]", lambda m: _UNSAFE[m.group()], case_id)


def case_key(key: str) -> str:
    return re.sub(r"%(25|2E|24)", lambda m: _SAFE[m.group()], key)


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


def _filed_version(cases: Mapping[str, Any], key: str) -> int | None:
    filed = cases.get(key)
    if filed is None:
        return None
    try:
        return int(json.loads(filed)[0])
    except (TypeError, ValueError, KeyError, IndexError):  # unreadable: any version replaces it, a remove takes it
        return -1


def effective(cases: Mapping[str, Any], change: Mapping[str, Any]) -> bool:
    """Whether a change changes anything: a put of a newer version, a remove of an older one."""
    filed = _filed_version(cases, change["key"])
    if change["op"] == "put":
        return filed is None or filed < change["v"]
    return filed is not None and filed < change["v"]


def step(cases: dict[str, Any], changes: Iterable[Mapping[str, Any]]) -> bool:
    """Apply a revision's changes to `cases`, in order; whether any changed anything."""
    changed = False
    for change in changes:
        if effective(cases, change):
            changed = True
            if change["op"] == "put":
                cases[change["key"]] = change["entry"]
            else:
                del cases[change["key"]]
    return changed


@dataclass
class _Shard:
    """A shard as this process last knew it: the state before record `rev`."""

    rev: int = 0
    cases: dict[str, Any] = field(default_factory=dict)


class MongoDeskQueue:
    def __init__(self, shards: AsyncCollection[Document], changes: AsyncCollection[Document],
                 commit: GroupCommit | None = None) -> None:
        self.shards = shards
        self.log = changes
        self.commit = commit or GroupCommit()  # this process's changes of one shard wait in line, then go together
        self._known: dict[str, _Shard] = {}
        self._locks = KeyedLocks()  # one catch-up of a shard at a time in this process
        self._decoded: dict[str, dict[str, tuple[str, QueueEntry]]] = {}  # shard → key → (stored text, entry)

    async def entries(self, unit: Unit) -> list[QueueEntry]:
        shards = [shard_id(unit, s) for s in range(SHARDS)]
        states = await asyncio.gather(*(self._current(shard) for shard in shards))
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
        await self._change(shard_id(entry.unit, shard_of(entry.case_id)), change)

    async def remove(self, case_id: str, unit: Unit, version: int) -> None:
        await self._change(shard_id(unit, shard_of(case_id)), {"key": field_key(case_id), "op": "remove",
                                                               "v": version})

    async def _change(self, shard: str, change: Document) -> None:
        await self.commit.write(f"desk_queue:{shard}", change, lambda changes: self._log(shard, changes))

    async def _current(self, shard: str) -> _Shard:
        """The shard as it is now: the state this process knew (or the snapshot), with the records after it."""
        async with self._locks.hold(shard):
            state = self._known.get(shard)
            if state is None:
                state = self._known[shard] = await self._snapshot(shard)
            replayed = 0
            while (record := await self.log.find_one({"_id": f"{shard}@{state.rev}"})) is not None:
                step(state.cases, record["changes"])
                state.rev += 1
                replayed += 1
                if replayed == CATCH_UP:  # far behind: a snapshot is nearer, if one was written since
                    newer = await self._snapshot(shard)
                    if newer.rev > state.rev:
                        state = self._known[shard] = newer
            return state

    async def _snapshot(self, shard: str) -> _Shard:
        doc = await self.shards.find_one({"_id": shard})
        return _Shard(int(doc.get("rev", 0)), dict(doc.get("cases", {}))) if doc else _Shard()

    async def _log(self, shard: str, changes: list[Document]) -> None:
        """Claim the shard's next revision for these changes."""
        for attempt in range(ATTEMPTS):
            state = await self._current(shard)
            rev = state.rev
            if not step(dict(state.cases), changes):
                return  # each filed at this version or later already, or nothing to take out
            try:
                await self.log.insert_one({"_id": f"{shard}@{rev}", "changes": changes, "at": datetime.now(UTC)})
            except DuplicateKeyError:  # another writer took this revision: catch up, and try the next
                await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 20)))
                continue
            async with self._locks.hold(shard):
                if state.rev == rev:  # nobody caught this process up past its own record meanwhile
                    step(state.cases, changes)
                    state.rev = rev + 1
                    if state.rev % SNAPSHOT_EVERY == 0:
                        await self._write_snapshot(shard, state)
            return
        raise Contended(f"queue shard {shard} kept changing under {len(changes)} changes")

    async def _write_snapshot(self, shard: str, state: _Shard) -> None:
        """The shard as of `state.rev`, unless a later snapshot is there already (then the insert of the upsert
        is refused: fine, it is newer)."""
        with contextlib.suppress(DuplicateKeyError):
            await self.shards.update_one({"_id": shard, "rev": {"$lt": state.rev}},
                                         {"$set": {"rev": state.rev, "cases": dict(state.cases)}}, upsert=True)
