"""A set of keyed records kept as a log of revisions, for FerretDB, which loses one of two concurrent updates
of a document: the desks' queue (queue.py) and the supervisors' figures (figures.py) are kept this way.

A shard is a log of revisions, `<log>` `<shard>@<n>`: the changes (puts, removes, adds) that take it from
revision n to n+1. FerretDB applies an update by reading a document and writing it back whole, so two updates
of one document at once lose one (measured: 200 concurrent `$set`s of 200 keys of one document kept 27),
whatever the update's filter says. What it does do atomically is refuse a second insert of one `_id`: the
writer that inserts `<shard>@<n>` owns revision n, and every other writer of the shard sees the duplicate,
catches up and tries n+1. Log records are small and never rewritten, and they are never deleted, so a shard's
state is exactly its records in order.

Every `snapshot_every` revisions, the writer of that revision also writes the whole shard, `{"_id": <shard>,
"rev": n, "cases": {<key>: <value>}}` (the state before record n), so a reader starting cold replays a few
records, not the whole history. A snapshot that loses a race to an older one is harmless: the records after it
are still there. Each process keeps the shards it has read and catches them up with one lookup of the next
record, so a write costs a lookup and an insert. Within a process, the changes of one shard wait in line and go
as one revision (a group commit). The same code is correct on MongoDB (where it is merely more careful than
needed).

A change is `{"key", "op": "put" | "remove", "v": <version>, ...}` (only a newer version replaces, only an
older one is removed) or `{"key", "op": "add", "value"}` (the first value of a key stands: facts that never
change).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from shared.adapters.mongo.ferretdb import Document, GroupCommit, KeyedLocks
from shared.handling import Contended

ATTEMPTS = 200  # a writer that loses the race for a revision this often gives up (Contended: retried later)

_UNSAFE = {"%": "%25", ".": "%2E", "$": "%24"}
_SAFE = {v: k for k, v in _UNSAFE.items()}


def field_key(key: str) -> str:
    """A key as a field name: no dot (a path) and no dollar (an operator); reversible."""
    return re.sub(r"[%.$]", lambda m: _UNSAFE[m.group()], key)


def case_key(key: str) -> str:
    if "%" not in key:
        return key
    return re.sub(r"%(25|2E|24)", lambda m: _SAFE[m.group()], key)


def _filed_version(cases: Mapping[str, Any], key: str) -> int | None:
    filed = cases.get(key)
    if filed is None:
        return None
    try:
        return int(json.loads(filed)[0])
    except (TypeError, ValueError, KeyError, IndexError):  # unreadable: any version replaces it, a remove takes it
        return -1


def effective(cases: Mapping[str, Any], change: Mapping[str, Any]) -> bool:
    """Whether a change changes anything: a put of a newer version, a remove of an older one, a first add."""
    if change["op"] == "add":
        return change["key"] not in cases
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
            elif change["op"] == "add":
                cases[change["key"]] = change["value"]
            else:
                del cases[change["key"]]
    return changed


def _would_change(state: Shard, changes: Iterable[Mapping[str, Any]]) -> bool:
    """Whether these changes change the shard; on a copy of the keys they touch (each reads only its own)."""
    listed = list(changes)
    return step({c["key"]: state.cases[c["key"]] for c in listed if c["key"] in state.cases}, listed)


@dataclass
class Shard:
    """A shard as this process last knew it: the state before record `rev`."""

    rev: int = 0
    cases: dict[str, Any] = field(default_factory=dict)


class ShardLog:
    def __init__(self, snapshots: AsyncCollection[Document], records: AsyncCollection[Document],
                 snapshot_every: int = 16, commit: GroupCommit | None = None) -> None:
        self.shards = snapshots
        self.log = records
        self.snapshot_every = snapshot_every  # revisions between a shard's snapshots: what a cold reader replays
        self.catch_up = 2 * snapshot_every  # records a cached shard replays before it looks for a newer snapshot
        self.commit = commit or GroupCommit()  # this process's changes of one shard wait in line, then go together
        self._known: dict[str, Shard] = {}
        self._locks = KeyedLocks()  # one catch-up of a shard at a time in this process

    async def change(self, shard: str, *changes: Document) -> None:
        """File these changes of one shard, in one revision with whatever else this process has waiting."""
        await self.commit.write_all(f"{self.log.name}:{shard}", changes, lambda queued: self._log(shard, queued))

    async def current(self, shard: str) -> Shard:
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
                if replayed == self.catch_up:  # far behind: a snapshot is nearer, if one was written since
                    newer = await self._snapshot(shard)
                    if newer.rev > state.rev:
                        state = self._known[shard] = newer
            return state

    async def erase(self, shard: str) -> None:
        """Every record and the snapshot of one shard gone (an erasure of whatever it names). Not safe against a
        concurrent writer of the shard: an erasure is an operator's act, not a service's."""
        await self.log.delete_many({"_id": {"$regex": f"^{re.escape(shard)}@"}})
        await self.shards.delete_one({"_id": shard})
        self.forget(shard)

    def forget(self, shard: str) -> None:
        """Keep no copy of a shard this process will not read again (the next read starts from its snapshot)."""
        self._known.pop(shard, None)

    async def _snapshot(self, shard: str) -> Shard:
        doc = await self.shards.find_one({"_id": shard})
        return Shard(int(doc.get("rev", 0)), dict(doc.get("cases", {}))) if doc else Shard()

    async def append(self, shard: str, *changes: Document) -> dict[str, Any]:
        """File these changes in a revision of their own (no group commit), and return the shard's keys as they
        were just before it: the writers of a shard are put in one order, each seeing those before it. The first
        try assumes a shard this process does not know is new, so filing a fresh key costs one insert."""
        before = await self._log(shard, list(changes), alone=True)
        assert before is not None  # a revision of its own always says what came before it
        return before

    async def _log(self, shard: str, changes: list[Document], alone: bool = False) -> dict[str, Any] | None:
        """Claim the shard's next revision for these changes. `alone` (an append): guess that a shard this
        process does not know is new, and return the shard's keys as they were before the revision (a copy
        only an append pays for: a queue's or the figures' shard is large, and its writers need none)."""
        for attempt in range(ATTEMPTS):
            # The first try trusts what this process knows when it says the changes change something: usually
            # this process wrote the shard's last revision itself, and an insert at a revision another writer
            # took is refused, which is when it catches up. (A change found to change something that, in the
            # log's order, no longer does is written and then ignored by every reader.) That nothing is to be
            # written is only ever decided on the shard as it is now.
            known = self._known.get(shard, Shard() if alone else None) if attempt == 0 else None
            if known is None or not _would_change(known, changes):
                known = await self.current(shard)
                if not _would_change(known, changes):
                    # each filed at this version or later already, or nothing to take out
                    return dict(known.cases) if alone else None
            state, rev, before = known, known.rev, dict(known.cases) if alone else None
            try:
                await self.log.insert_one({"_id": f"{shard}@{rev}", "changes": changes, "at": datetime.now(UTC)})
            except DuplicateKeyError:  # another writer took this revision: catch up, and try the next
                await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 20)))
                continue
            async with self._locks.hold(shard):
                if self._known.get(shard) is state and state.rev == rev:  # not caught up past its record meanwhile
                    step(state.cases, changes)
                    state.rev = rev + 1
                    if state.rev % self.snapshot_every == 0:
                        await self._write_snapshot(shard, state)
            return before
        raise Contended(f"{self.log.name} shard {shard} kept changing under {len(changes)} changes")

    async def _write_snapshot(self, shard: str, state: Shard) -> None:
        """The shard as of `state.rev`, unless a later snapshot is there already (then the insert of the upsert
        is refused: fine, it is newer)."""
        with contextlib.suppress(DuplicateKeyError):
            await self.shards.update_one({"_id": shard, "rev": {"$lt": state.rev}},
                                         {"$set": {"rev": state.rev, "cases": dict(state.cases)}}, upsert=True)
