"""The follow-up's durable timers on MongoDB, found by key rather than by query.

A timer is filed under the day it falls due, in one of a few buckets per day (so no bucket grows large):
bucket `<day>#<nn>` lists the timers due that day and those already finished. Two follow-up instances file
and finish timers of one bucket at once, and FerretDB loses one of two concurrent updates of a document
(a lost filing is a missed escalation), so a bucket is a log of revisions (shardlog.py): each filing or
finishing is a record claimed by a unique insert, never an update. A cursor names the earliest day that may
still hold unfinished timers, so a scan reads a few buckets by key. Claims (who fires a timer now) live in
their own small collection, deleted when the timer is done.

A timer is finished per day: a routed event redelivered after its overdue timer fired files that timer
again under today, and it falls due again. The case has the timer's entry on its timeline already, so
nothing changes; the alert is published again under the same event id.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from shared.adapters.mongo.ferretdb import Document, GroupCommit
from shared.adapters.mongo.shardlog import ShardLog, field_key
from shared.domain.followup import TimerKind, TimerSpec

TIMER_BUCKETS = 64
SNAPSHOT_EVERY = 32  # a bucket's revisions between snapshots: a cold scan replays at most this many records


def timer_bucket(day: str, tid: str) -> str:
    return f"{day}#{int(hashlib.blake2b(tid.encode(), digest_size=2).hexdigest(), 16) % TIMER_BUCKETS:02d}"


def _spec_document(t: TimerSpec) -> Document:
    return {"id": t.id, "case_id": t.case_id, "rule": t.rule, "due": t.due, "kind": t.kind.value, "due_at": t.due_at}


def _spec(doc: Document) -> TimerSpec:
    return TimerSpec(doc["case_id"], doc["rule"], doc["due"], TimerKind(doc["kind"]), doc["due_at"])


def _filed(timer_id: str) -> str:
    return field_key(f"t:{timer_id}")


def _finished(timer_id: str) -> str:
    return field_key(f"d:{timer_id}")


class MongoTimerBook:
    def __init__(self, buckets: AsyncCollection[Document], records: AsyncCollection[Document],
                 claims: AsyncCollection[Document], control: AsyncCollection[Document], commit: GroupCommit) -> None:
        self.book = ShardLog(buckets, records, SNAPSHOT_EVERY)
        self.claims, self.control, self.commit = claims, control, commit
        # The cursor is known to be at or before this day (it moves forward only past days long gone), so
        # filing a timer on this day or later need not lower it: one write saved per routed case.
        self._cursor_at_most: str | None = None

    async def schedule(self, timers: Sequence[TimerSpec], today: date) -> None:
        if not timers:
            return
        filed: defaultdict[str, list[Document]] = defaultdict(list)
        days = [t.filed_on(today) for t in timers]
        for t, day in zip(timers, days, strict=True):
            filed[timer_bucket(day, t.id)].append({"key": _filed(t.id), "op": "add", "value": _spec_document(t)})
        await asyncio.gather(*(self.book.change(bucket, *changes) for bucket, changes in filed.items()))
        earliest = min(days)
        if self._cursor_at_most is None or self._cursor_at_most > earliest:
            await self.commit.write("timer_cursor", earliest, self._lower_cursor)
            self._cursor_at_most = earliest

    async def adopt(self, legacy: AsyncCollection[Document]) -> int:
        """File again, in their buckets' logs, the timers an earlier version kept in updated day documents
        (`timer_days`: `timers` and `done` lists, one document per `<day>#<bucket>`); returns how many documents
        moved. Each timer goes to the bucket its id falls in, where finishing it looks. Safe to repeat: a filing
        or finishing made twice counts once."""
        moved = 0
        async for doc in legacy.find({}):
            day = str(doc["_id"]).split("#", 1)[0]
            changes: defaultdict[str, list[Document]] = defaultdict(list)
            for t in doc.get("timers", []):
                changes[timer_bucket(day, t["id"])].append({"key": _filed(t["id"]), "op": "add", "value": t})
            for i in doc.get("done", []):
                changes[timer_bucket(day, i)].append({"key": _finished(i), "op": "add", "value": 1})
            await asyncio.gather(*(self.book.change(bucket, *filed) for bucket, filed in changes.items()))
            await legacy.delete_one({"_id": doc["_id"]})
            moved += 1
        return moved

    async def _lower_cursor(self, days: list[str]) -> None:
        # Lowered only before the first scan, or by a filer whose clock lags a day behind the scanner's (a
        # timer is filed under the filer's today or later, and the cursor stays a day behind the scan's today):
        # never in steady state, so a lost update here is not a race that happens.
        await self.control.update_one({"_id": "timer_cursor"}, {"$min": {"day": min(days)}}, upsert=True)

    async def cursor(self) -> str | None:
        doc = await self.control.find_one({"_id": "timer_cursor"})
        return str(doc["day"]) if doc else None

    async def move_cursor(self, from_day: str, to_day: str) -> None:
        async with self.commit.locks.hold("timer_cursor"):  # the lock _lower_cursor's writes hold
            await self.control.update_one({"_id": "timer_cursor", "day": from_day}, {"$set": {"day": to_day}})
        self._cursor_at_most = to_day if self._cursor_at_most is None else max(self._cursor_at_most, to_day)
        for bucket in range(TIMER_BUCKETS):  # a day the scan has left is not read again: keep no copy of it
            self.book.forget(f"{from_day}#{bucket:02d}")

    async def unfinished_on(self, day: str) -> list[TimerSpec]:
        buckets = await asyncio.gather(*(self.book.current(f"{day}#{b:02d}") for b in range(TIMER_BUCKETS)))
        return [_spec(doc) for bucket in buckets for doc in _unfinished(bucket.cases)]

    async def claim(self, timer: TimerSpec, owner: str, now: datetime, lease_until: datetime) -> bool:
        key = f"{timer.id}#claim"
        claim = await self.claims.find_one_and_update(
            {"_id": key}, {"$setOnInsert": {"owner": owner, "lease_until": lease_until}},
            upsert=True, return_document=ReturnDocument.AFTER,
        )
        if claim is None:
            return False
        if claim["owner"] == owner:
            return True
        if claim["lease_until"] > now:
            return False
        # The holder's lease ran out: take over, compare-and-set on the (tiny) claims collection. Two takers
        # at once may both win on FerretDB; the case's version check lets only one of them fire.
        taken = await self.claims.update_one(
            {"_id": key, "owner": claim["owner"], "lease_until": claim["lease_until"]},
            {"$set": {"owner": owner, "lease_until": lease_until}},
        )
        return taken.modified_count == 1

    async def is_finished(self, timer: TimerSpec, day: str) -> bool:
        return _finished(timer.id) in (await self.book.current(timer_bucket(day, timer.id))).cases

    async def finish(self, timer: TimerSpec, day: str) -> None:
        await self.book.change(timer_bucket(day, timer.id), {"key": _finished(timer.id), "op": "add", "value": 1})
        await self.claims.delete_one({"_id": f"{timer.id}#claim"})


def _unfinished(cases: Mapping[str, Any]) -> list[Document]:
    return [doc for key, doc in cases.items()
            if key.startswith("t:") and _finished(doc["id"]) not in cases]
