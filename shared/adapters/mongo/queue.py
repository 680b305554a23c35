"""The desks' queue on MongoDB: each unit's entries in SHARDS documents read by `_id`, the one lookup FerretDB
(v1, on SQLite) indexes. Measured there on 100,000 documents: a find by `_id` 1.5 ms; a range or `$in` on
`_id`, or any other filter with a sort, 2.3-2.6 s (whole-collection scans). So a desk's page reads its
unit's shard documents concurrently, by `_id`, and cuts the page in memory (shared/domain/queue.py).

A shard document is `{"_id": "<unit>:<shard>", "rev": n, "cases": {<key>: "<the entry as a JSON array>"}}`.
An entry is a JSON string, not a sub-document: FerretDB converts every value it reads, and a shard of 313
entries read in 7 ms as strings against 25 ms as sub-documents (32 such reads at once: 190 ms against 820).

Writes are a log, because FerretDB applies an update by reading the document and writing it back whole: two
updates of one shard at once lose one (measured: 200 concurrent `$set`s of 200 different keys of one document
kept 27), whatever the update's filter says, so a version-conditional `update_one` with `$or`/`$exists` (which
FerretDB does evaluate correctly, one at a time) is not atomic there. What FerretDB does do atomically is
refuse a second insert of one `_id`. So the change that takes a shard from revision n to n+1 is first
inserted into `desk_queue_log` as `<shard>@<n>`: the writer that inserts it owns revision n, every other
writer of the shard sees the duplicate and starts again from the newer state. The shard document is a cache
of its log, written `rev`-conditionally:
- a writer that dies between its log insert and its shard write leaves a change that the next writer of the
  shard applies for it (the log holds the whole change), and that readers apply in memory meanwhile;
- a shard write delayed past later ones can put back an older revision (the update's read and write are
  apart): the changes after it are still in the log, so readers and the next writer apply them again.
Log records older than LOG_KEPT revisions are deleted as the shard moves on. Within a process, the changes
of one shard wait in line and go as one revision (a group commit), so a burst does not race itself.

The same code is correct on MongoDB (where it is merely more careful than needed).
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
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from shared.adapters.mongo.ferretdb import Document, GroupCommit
from shared.domain.lifecycle import CaseStatus
from shared.domain.queue import QueueEntry
from shared.domain.triage import Category, Unit, Urgency
from shared.handling import Contended

log = logging.getLogger(__name__)

# Enough shards that each stays small (about 300 entries, ~100 kB, at 10,000 open cases in a unit), since
# FerretDB rewrites the whole shard document at every write; few enough that a desk's page is 32 reads by
# `_id`, made at once.
SHARDS = 32
LOG_KEPT = 64  # revisions of a shard's log kept: far more than writes can overtake one delayed write
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


def step(cases: dict[str, Any], changes: Iterable[Mapping[str, Any]], rev: int) -> Document:
    """Apply a logged revision's changes to `cases` (in memory), in order, and say the shard update that
    does the same."""
    touched: set[str] = set()
    for change in changes:
        if effective(cases, change):
            key = change["key"]
            touched.add(key)
            if change["op"] == "put":
                cases[key] = change["entry"]
            else:
                del cases[key]
    update: Document = {"$set": {"rev": rev + 1, **{f"cases.{k}": cases[k] for k in touched if k in cases}}}
    gone = {f"cases.{k}": "" for k in touched if k not in cases}
    return {**update, "$unset": gone} if gone else update


def changes_anything(update: Document) -> bool:
    """Whether a shard update does more than move the revision on."""
    return len(update["$set"]) > 1 or "$unset" in update


class MongoDeskQueue:
    def __init__(self, shards: AsyncCollection[Document], changes: AsyncCollection[Document],
                 commit: GroupCommit | None = None) -> None:
        self.shards = shards
        self.log = changes
        self.commit = commit or GroupCommit()  # this process's changes of one shard wait in line, then go together
        self._decoded: dict[str, dict[str, tuple[str, QueueEntry]]] = {}  # shard → key → (stored text, entry)

    async def entries(self, unit: Unit) -> list[QueueEntry]:
        states = await asyncio.gather(*(self._state(shard_id(unit, s)) for s in range(SHARDS)))
        found: list[QueueEntry] = []
        for shard, (_, cases, _) in zip((shard_id(unit, s) for s in range(SHARDS)), states, strict=True):
            found.extend(self._decode(unit, shard, cases))
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
            except (ValidationError, KeyError, TypeError, ValueError, IndexError) as exc:
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

    async def _state(self, shard: str) -> tuple[int, dict[str, Any], list[tuple[int, Document]]]:
        """The shard as its log says it is: its revision, its cases, and the logged changes its document
        lacks yet (with the update that applies each)."""
        doc = await self.shards.find_one({"_id": shard})
        rev = int(doc.get("rev", 0)) if doc else 0
        cases: dict[str, Any] = dict(doc.get("cases", {})) if doc else {}
        pending: list[tuple[int, Document]] = []
        while (change := await self.log.find_one({"_id": f"{shard}@{rev}"})) is not None:
            pending.append((rev, step(cases, change["changes"], rev)))
            rev += 1
        return rev, cases, pending

    async def _log(self, shard: str, changes: list[Document]) -> None:
        """Claim the shard's next revision for these changes, and write it."""
        for attempt in range(ATTEMPTS):
            rev, cases, pending = await self._state(shard)
            for pending_rev, update in pending:  # a writer that died, or a write that was undone: redo it
                await self._write(shard, pending_rev, update)
            if not changes_anything(step(dict(cases), changes, rev)):
                return  # each filed at this version or later already, or nothing to take out
            try:
                await self.log.insert_one({"_id": f"{shard}@{rev}", "changes": changes, "at": datetime.now(UTC)})
            except DuplicateKeyError:  # another writer took this revision: look again
                await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 20)))
                continue
            update = step(cases, changes, rev)
            await asyncio.gather(self._write(shard, rev, update), self._forget(shard, rev - LOG_KEPT))
            return
        raise Contended(f"queue shard {shard} kept changing under {len(changes)} changes")

    async def _forget(self, shard: str, rev: int) -> None:
        if rev >= 0:
            await self.log.delete_one({"_id": f"{shard}@{rev}"})

    async def _write(self, shard: str, rev: int, update: Document) -> None:
        """Take the shard document from `rev` to `rev + 1`; a document already past it is left alone."""
        with contextlib.suppress(DuplicateKeyError):  # revision 0 was written by another writer already
            await self.shards.update_one({"_id": shard, "rev": rev}, update, upsert=rev == 0)
