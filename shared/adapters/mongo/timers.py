"""The follow-up's durable timers on MongoDB, found by key rather than by query.

A timer is filed under the day it falls due, in one of a few buckets per day (so no document grows large):
`<day>#<bucket>` lists the timers due that day and those already finished. A cursor names the earliest
day that may still hold unfinished timers, so a scan reads a few documents by key. Claims (who fires a
timer now) live in their own small collection, deleted when the timer is done.

A timer is finished per day: a routed event redelivered after its overdue timer fired files that timer
again under today, and it falls due again. The case has the timer's entry on its timeline already, so
nothing changes; the alert is published again under the same event id.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from shared.adapters.mongo.ferretdb import Document, GroupCommit
from shared.domain.followup import TimerKind, TimerSpec

TIMER_BUCKETS = 64
_INDEX = "timer_index"  # the group-commit key of the day documents


def timer_bucket(day: str, tid: str) -> str:
    return f"{day}#{int(hashlib.blake2b(tid.encode(), digest_size=2).hexdigest(), 16) % TIMER_BUCKETS:02d}"


def _spec_document(t: TimerSpec) -> Document:
    return {"id": t.id, "case_id": t.case_id, "rule": t.rule, "due": t.due, "kind": t.kind.value, "due_at": t.due_at}


def _spec(doc: Document) -> TimerSpec:
    return TimerSpec(doc["case_id"], doc["rule"], doc["due"], TimerKind(doc["kind"]), doc["due_at"])


class MongoTimerBook:
    def __init__(self, days: AsyncCollection[Document], claims: AsyncCollection[Document],
                 control: AsyncCollection[Document], commit: GroupCommit) -> None:
        self.days, self.claims, self.control, self.commit = days, claims, control, commit
        # The cursor is known to be at or before this day (it moves forward only past days long gone), so
        # filing a timer on this day or later need not lower it: one write saved per routed case.
        self._cursor_at_most: str | None = None

    async def schedule(self, timers: Sequence[TimerSpec], today: date) -> None:
        if not timers:
            return
        filed: defaultdict[str, list[Document]] = defaultdict(list)
        days = [t.filed_on(today) for t in timers]
        for t, day in zip(timers, days, strict=True):
            filed[timer_bucket(day, t.id)].append(_spec_document(t))
        await self.commit.write(_INDEX, [(bucket, "timers", specs) for bucket, specs in filed.items()],
                                self._write_index)
        earliest = min(days)
        if self._cursor_at_most is None or self._cursor_at_most > earliest:
            await self.commit.write("timer_cursor", earliest, self._lower_cursor)
            self._cursor_at_most = earliest

    async def _write_index(self, changes: list[list[tuple[str, str, list[Any]]]]) -> None:
        adds: defaultdict[str, defaultdict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
        for change in changes:
            for bucket, field_name, values in change:
                adds[bucket][field_name].extend(values)
        await self.days.bulk_write([
            UpdateOne({"_id": bucket}, {"$addToSet": {f: {"$each": v} for f, v in fields.items()}}, upsert=True)
            for bucket, fields in adds.items()
        ], ordered=False)

    async def _lower_cursor(self, days: list[str]) -> None:
        await self.control.update_one({"_id": "timer_cursor"}, {"$min": {"day": min(days)}}, upsert=True)

    async def cursor(self) -> str | None:
        doc = await self.control.find_one({"_id": "timer_cursor"})
        return str(doc["day"]) if doc else None

    async def move_cursor(self, from_day: str, to_day: str) -> None:
        async with self.commit.locks.hold("timer_cursor"):  # the lock _lower_cursor's writes hold
            await self.control.update_one({"_id": "timer_cursor", "day": from_day}, {"$set": {"day": to_day}})
        self._cursor_at_most = to_day if self._cursor_at_most is None else max(self._cursor_at_most, to_day)

    async def unfinished_on(self, day: str) -> list[TimerSpec]:
        found: list[TimerSpec] = []
        for bucket in range(TIMER_BUCKETS):
            doc = await self.days.find_one({"_id": f"{day}#{bucket:02d}"}) or {}
            done = set(doc.get("done", []))
            found.extend(_spec(t) for t in doc.get("timers", []) if t["id"] not in done)
        return found

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
        # The holder's lease ran out: take over, compare-and-set on the (tiny) claims collection.
        taken = await self.claims.update_one(
            {"_id": key, "owner": claim["owner"], "lease_until": claim["lease_until"]},
            {"$set": {"owner": owner, "lease_until": lease_until}},
        )
        return taken.modified_count == 1

    async def is_finished(self, timer: TimerSpec, day: str) -> bool:
        doc = await self.days.find_one({"_id": timer_bucket(day, timer.id)}, {"done": 1})
        return timer.id in (doc or {}).get("done", [])

    async def finish(self, timer: TimerSpec, day: str) -> None:
        await self.commit.write(_INDEX, [(timer_bucket(day, timer.id), "done", [timer.id])], self._write_index)
        await self.claims.delete_one({"_id": f"{timer.id}#claim"})
