"""The case store on MongoDB (or FerretDB), through PyMongo's native AsyncMongoClient.

Every write is idempotent: documents have ids derived from the event that causes them, creations are
upserts with `$setOnInsert`, status changes are conditional on the status they start from, and timeline
entries are pushed only if their id is not there yet, so a redelivered event changes nothing.

Every read and write on a hot path filters on `_id` alone: FerretDB's SQLite backend answers those from
its primary key (with the lookup index deploy/ferretdb adds) but decodes the whole collection for any
filter with a second field. So:
- the store keeps its own small key documents where it must find things by something else: a
  complainant's open cases, the timers due on a day;
- a status change is compare-and-set by version: the writer claims `<case>@<version>` (a unique `_id`)
  before it writes the case, so two writers never both move a case from the same state;
- other conditions (is this timeline entry there yet?) are checked on the document just read.
FerretDB applies an update by reading the document and writing it back whole, so two updates of one
document at once may lose one. A consumer never runs two events of one case side by side; where two
paths in one process may still meet on a case (a repeat joining it, the follow-up's subscribers and its
timer scanner) they hold `exclusive(case_id)`, and the few documents many cases share (the timer index)
are written under their own lock, group-committed.
Only operations FerretDB supports are used (no transactions, TTL indexes, change streams, `$lookup`,
`$facet`).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from shared.config import Settings
from shared.domain.case import CaseStatus
from shared.domain.triage import Assessment
from shared.handling import Contended

Document = dict[str, Any]
T = TypeVar("T")
MAX_KEYED_CASES = 50  # how many recent cases a repeat key remembers


def assessment_document(assessment: Assessment) -> Document:
    """An assessment as stored: FerretDB cannot keep nested arrays, so scores become objects."""
    doc = assessment.model_dump(mode="json")
    doc["top_categories"] = [{"category": c, "probability": p} for c, p in doc["top_categories"]]
    return doc


def assessment_from_document(doc: Mapping[str, Any]) -> Assessment:
    data = {k: v for k, v in doc.items() if k != "_id"}  # kept under the case's id in `assessments`
    data["top_categories"] = [(s["category"], s["probability"]) for s in data.get("top_categories", [])]
    return Assessment.model_validate(data)


def timeline_entry(entry_id: str, at: datetime, kind: str, **detail: Any) -> Document:
    return {"id": entry_id, "at": at, "kind": kind, "detail": detail}


TIMER_BUCKETS = 64  # a day's timers are spread over this many documents, so none grows large


def timer_bucket(day: str, tid: str) -> str:
    return f"{day}#{int(hashlib.blake2b(tid.encode(), digest_size=2).hexdigest(), 16) % TIMER_BUCKETS:02d}"


def timer_id(case_id: str, rule: str, due: str, kind: str) -> str:
    """A timer's id names its deadline's due date, so an extension makes new timers, not changed ones."""
    return f"{case_id}:{rule}:{due}:{kind}"


def deadline_key(rule: str) -> str:
    """A deadline's field under `deadlines`: a dot would nest the path."""
    return rule.replace(".", "_")


class KeyedLocks:
    """One asyncio lock per key, kept only while someone holds or awaits it (so no lock per case forever)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        lock = lock or asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            _, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


@dataclass
class _Queued(Generic[T]):
    """Changes to one shared document, waiting to go in one write."""

    items: list[T] = field(default_factory=list)
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class CaseStore:
    def __init__(self, client: AsyncMongoClient[Document], database: str) -> None:
        self.client = client
        self.db: AsyncDatabase[Document] = client[database]
        self.cases: AsyncCollection[Document] = self.db["cases"]
        self.versions: AsyncCollection[Document] = self.db["case_versions"]
        self.timer_claims: AsyncCollection[Document] = self.db["timer_claims"]
        self.receipts: AsyncCollection[Document] = self.db["receipts"]
        self.repeat_keys: AsyncCollection[Document] = self.db["repeat_keys"]
        self.routings: AsyncCollection[Document] = self.db["routings"]
        self.assessments: AsyncCollection[Document] = self.db["assessments"]
        self.dead_letters: AsyncCollection[Document] = self.db["dead_letters"]
        self.timers: AsyncCollection[Document] = self.db["timers"]
        self.timer_days: AsyncCollection[Document] = self.db["timer_days"]
        self.control: AsyncCollection[Document] = self.db["control"]
        self.actions: AsyncCollection[Document] = self.db["desk_actions"]
        self._locks = KeyedLocks()  # see the module's note
        self._queued: dict[str, _Queued[Any]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> CaseStore:
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            settings.mongodb_uri,
            tz_aware=True,
            serverSelectionTimeoutMS=5_000,
            connectTimeoutMS=5_000,
            appname="grievance-triage",
        )
        return cls(client, settings.mongodb_database)

    async def ensure_indexes(self) -> None:
        # Used by MongoDB for the desks' queues; FerretDB's SQLite backend scans instead.
        await self.cases.create_index([("unit", ASCENDING), ("status", ASCENDING)])

    async def ping(self) -> bool:
        try:
            await self.db.command("ping")
        except Exception:
            return False
        return True

    async def close(self) -> None:
        await self.client.close()

    # --- intake -------------------------------------------------------------------------------------

    async def claim_receipt(self, receipt_id: str, case_id: str, own_case_id: str, at: datetime) -> tuple[str, bool]:
        """Record which case an incoming event belongs to (its own, or an open one it repeats); a
        redelivery gets the first answer back. Returns the case id and whether the event is new."""
        doc = await self.receipts.find_one_and_update(
            {"_id": receipt_id},
            {"$setOnInsert": {"case_id": case_id, "own_case_id": own_case_id, "at": at}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert doc is not None  # an upsert always returns the document
        return str(doc["case_id"]), doc["at"] == at

    async def open_case(self, case: Mapping[str, Any], entry: Document) -> None:
        await self.cases.update_one(
            {"_id": case["_id"]},
            {"$setOnInsert": {**case, "timeline": [entry], "timeline_ids": [entry["id"]]}},
            upsert=True,
        )

    async def cases_under(self, keys: Iterable[str]) -> dict[str, list[str]]:
        """The recent cases filed under each repeat key, oldest first."""
        keys = list(keys)
        docs = await asyncio.gather(*(self.repeat_keys.find_one({"_id": key}) for key in keys))
        return {key: list((doc or {}).get("cases", [])) for key, doc in zip(keys, docs, strict=True)}

    async def file_under(self, filed: Mapping[str, list[str]], case_id: str) -> None:
        """File a case under its repeat keys; a key remembers only its most recent cases, so a flood of
        reports from one number cannot make every lookup slower."""
        for key, cases in filed.items():
            if len(cases) < MAX_KEYED_CASES:
                await self.repeat_keys.update_one({"_id": key}, {"$addToSet": {"cases": case_id}}, upsert=True)
            elif case_id not in cases:
                recent = [*cases[-(MAX_KEYED_CASES - 1):], case_id]
                await self.repeat_keys.update_one({"_id": key}, {"$set": {"cases": recent}}, upsert=True)

    # --- status changes and the timeline ------------------------------------------------------------

    async def advance(
        self,
        case_id: str,
        from_statuses: set[CaseStatus] | frozenset[CaseStatus],
        to_status: CaseStatus,
        fields: Mapping[str, Any],
        *,
        op_id: str,
        entry: Document | None = None,
        guard: Mapping[str, Any] | None = None,
        case: Document | None = None,
    ) -> bool:
        """Move a case to `to_status` if it is in one of `from_statuses` (and matches `guard`), writing the
        timeline entry in the same update. False if the case was not in such a state, or if `entry` is
        on its timeline already (the same operation, replayed). `op_id` names the operation: a writer that
        crashed between its claim and its write finishes the job when its event comes again. `case` is the
        document as the caller just read it, saving a read (a stale one only costs a retry)."""
        for attempt in range(40):
            if case is None or attempt > 0:
                case = await self.get_case(case_id)
            if case is None or (entry is not None and entry["id"] in case.get("timeline_ids", [])):
                return False
            if CaseStatus(case["status"]) not in from_statuses:
                return False
            if any(case.get(k) != v for k, v in (guard or {}).items()):
                return False
            version = int(case.get("version", 0))
            claim = await self.versions.find_one_and_update(
                {"_id": f"{case_id}@{version}"}, {"$setOnInsert": {"op": op_id}},
                upsert=True, return_document=ReturnDocument.AFTER,
            )
            if claim is None or claim["op"] != op_id:
                await asyncio.sleep(min(0.02 * (attempt + 1), 0.25))  # another writer's update is on its way
                continue
            update: Document = {"$set": {**fields, "status": to_status.value, "version": version + 1}}
            if entry is not None:
                update["$push"] = {"timeline": entry, "timeline_ids": entry["id"]}
            await self.cases.update_one({"_id": case_id}, update)
            return True
        raise Contended(f"case {case_id} stayed claimed by another writer")

    def exclusive(self, case_id: str) -> AbstractAsyncContextManager[None]:
        """Hold a case against other work on it in this process (see the module's note)."""
        return self._locks.hold(f"case:{case_id}")

    async def get_case(self, case_id: str) -> Document | None:
        return await self.cases.find_one({"_id": case_id})

    async def record(self, case_id: str, entry_id: str, at: datetime, kind: str, **detail: Any) -> bool:
        """Add an entry to the case's timeline, once; False if it was there already."""
        return await self.update_recording(case_id, timeline_entry(entry_id, at, kind, **detail), {})

    async def update_recording(self, case_id: str, entry: Document, update: Mapping[str, Any]) -> bool:
        """Apply `update` and add the timeline entry together, once per entry id (as far as the case just
        read shows: this is for events replayed one after another, not raced)."""
        case = await self.cases.find_one({"_id": case_id}, {"timeline_ids": 1})
        if case is None or entry["id"] in case.get("timeline_ids", []):
            return False
        result = await self.cases.update_one(
            {"_id": case_id}, {**update, "$push": {"timeline": entry, "timeline_ids": entry["id"]}}
        )
        return result.modified_count == 1

    # --- classification -----------------------------------------------------------------------------

    async def record_assessment(self, case_id: str, assessment: Assessment) -> Assessment:
        """The whole assessment with its reasons, beside the case (which keeps the conclusions and stays small
        for the many reads and writes after classification). Decided once: a replay, which may see more
        repeats than the first time did, gets the first assessment back."""
        doc = await self.assessments.find_one_and_update(
            {"_id": case_id}, {"$setOnInsert": assessment_document(assessment)},
            upsert=True, return_document=ReturnDocument.AFTER,
        )
        assert doc is not None  # an upsert always returns the document
        return assessment_from_document(doc)

    async def get_assessment(self, case_id: str) -> Assessment | None:
        doc = await self.assessments.find_one({"_id": case_id})
        return assessment_from_document(doc) if doc else None

    # --- routing ------------------------------------------------------------------------------------

    async def record_routing(self, case_id: str, attempt: int, decision: Mapping[str, Any]) -> bool:
        """One routing per case and attempt; False if this attempt was already routed."""
        result = await self.routings.update_one(
            {"_id": f"{case_id}:{attempt}"},
            {"$setOnInsert": {"case_id": case_id, "attempt": attempt, **decision}},
            upsert=True,
        )
        return result.upserted_id is not None

    async def get_routing(self, case_id: str, attempt: int) -> Document | None:
        return await self.routings.find_one({"_id": f"{case_id}:{attempt}"})

    # --- deadlines and timers -----------------------------------------------------------------------

    async def open_deadlines(
        self, case: Mapping[str, Any], deadlines: Sequence[Mapping[str, Any]], entries: Sequence[Document]
    ) -> list[str]:
        """Put deadlines on the case, each rule once, with their timeline entries, in one update (as the
        case just read shows). Returns the rules opened now."""
        open_already = case.get("deadlines") or {}
        fresh = [d for d in deadlines if deadline_key(str(d["rule"])) not in open_already]
        known = set(case.get("timeline_ids", []))
        entries = [e for e in entries if e["id"] not in known]
        if not fresh and not entries:
            return []
        update: Document = {}
        if fresh:
            update["$set"] = {f"deadlines.{deadline_key(str(d['rule']))}": dict(d) for d in fresh}
        if entries:
            update["$push"] = {"timeline": {"$each": list(entries)},
                               "timeline_ids": {"$each": [e["id"] for e in entries]}}
        await self.cases.update_one({"_id": case["_id"]}, update)
        return [str(d["rule"]) for d in fresh]

    async def schedule_timers(
        self, case_id: str, timers: Iterable[tuple[str, str, str, datetime]], today: date
    ) -> None:
        """Durable timers (rule, due date, kind, due at), each once, filed under the day it falls due so the
        scanner finds it by key; one already overdue is filed under today, a day the scanner has not left."""
        filed: defaultdict[str, list[str]] = defaultdict(list)
        days: set[str] = set()
        writes = []
        for rule, due, kind, due_at in timers:
            tid = timer_id(case_id, rule, due, kind)
            day = max(due_at.date(), today).isoformat()
            writes.append(self.timers.update_one(
                {"_id": tid},
                {"$setOnInsert": {"case_id": case_id, "rule": rule, "due": due, "kind": kind, "due_at": due_at,
                                  "day": day, "state": "pending"}},
                upsert=True,
            ))
            filed[timer_bucket(day, tid)].append(tid)
            days.add(day)
        if not writes:
            return
        await asyncio.gather(*writes)  # the timers first: the index never names a timer that is not there
        await asyncio.gather(*(self._file_timers(bucket, "timers", tids) for bucket, tids in filed.items()))
        await self._lower_timer_cursor(min(days))

    async def _together(self, key: str, change: T, write: Callable[[list[T]], Awaitable[Any]]) -> None:
        """Apply `change` to a document many cases share. Its writes are serialized (FerretDB rewrites a
        document whole, so two at once could lose one), and the changes queued meanwhile go in one write:
        a group commit, so a busy consumer does not wait in line once per case."""
        queued = self._queued.get(key)
        if queued is None:
            queued = self._queued[key] = _Queued()
        queued.items.append(change)
        async with self._locks.hold(key):
            if self._queued.get(key) is queued:  # nobody has written these changes yet
                del self._queued[key]
                try:
                    await write(queued.items)
                    queued.done.set_result(None)
                except Exception as exc:  # every waiter sees it, and retries its own change
                    queued.done.set_exception(exc)
                except BaseException:  # cancelled: the others retry rather than wait forever
                    queued.done.set_exception(Contended(f"the write of {key} was cancelled"))
                    queued.done.exception()  # retrieved here, should nobody else be waiting
                    raise
        await queued.done

    async def _file_timers(self, bucket: str, field_name: str, tids: list[str]) -> None:
        async def write(changes: list[tuple[str, list[str]]]) -> None:
            fields: defaultdict[str, list[str]] = defaultdict(list)
            for name, values in changes:
                fields[name].extend(values)
            adds = {name: {"$each": values} for name, values in fields.items()}
            await self.timer_days.update_one({"_id": bucket}, {"$addToSet": adds}, upsert=True)

        await self._together(f"timer_days:{bucket}", (field_name, tids), write)

    async def _lower_timer_cursor(self, day: str) -> None:
        async def write(days: list[str]) -> None:
            await self.control.update_one({"_id": "timer_cursor"}, {"$min": {"day": min(days)}}, upsert=True)

        await self._together("control:timer_cursor", day, write)

    async def cancel_timer(self, tid: str) -> None:
        timer = await self.timers.find_one({"_id": tid}, {"state": 1})
        if timer and timer["state"] == "pending":
            await self.timers.update_one({"_id": tid}, {"$set": {"state": "cancelled"}})

    async def timer_cursor(self) -> str | None:
        """The earliest day that may still hold unfinished timers."""
        doc = await self.control.find_one({"_id": "timer_cursor"})
        return str(doc["day"]) if doc else None

    async def move_timer_cursor(self, from_day: str, to_day: str) -> None:
        async with self._locks.hold("control:timer_cursor"):  # the same lock as _lower_timer_cursor's writes
            await self.control.update_one({"_id": "timer_cursor", "day": from_day}, {"$set": {"day": to_day}})

    async def timers_on(self, day: str) -> tuple[list[str], set[str]]:
        """The timers filed under a day, and those of them already finished."""
        timers: list[str] = []
        done: set[str] = set()
        for bucket in range(TIMER_BUCKETS):
            doc = await self.timer_days.find_one({"_id": f"{day}#{bucket:02d}"}) or {}
            timers.extend(doc.get("timers", []))
            done.update(doc.get("done", []))
        return timers, done

    async def claim_timer(self, tid: str, owner: str, now: datetime, lease_until: datetime) -> bool:
        """Take a timer for firing: no two instances hold it at once. A holder that died is replaced once
        its lease has run out. Claims live in their own small collection, deleted when the timer is done."""
        key = f"{tid}#claim"
        claim = await self.timer_claims.find_one_and_update(
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
        taken = await self.timer_claims.update_one(
            {"_id": key, "owner": claim["owner"], "lease_until": claim["lease_until"]},
            {"$set": {"owner": owner, "lease_until": lease_until}},
        )
        return taken.modified_count == 1

    async def release_timer(self, tid: str) -> None:
        await self.timer_claims.delete_one({"_id": f"{tid}#claim"})

    async def get_timer(self, tid: str) -> Document | None:
        return await self.timers.find_one({"_id": tid})

    async def finish_timer(self, timer: Mapping[str, Any], outcome: str, at: datetime) -> None:
        await self.timers.update_one({"_id": timer["_id"]}, {"$set": {"state": outcome, "fired_at": at}})
        await self.mark_timer_done(timer["day"], timer["_id"])
        await self.release_timer(timer["_id"])

    async def mark_timer_done(self, day: str, tid: str) -> None:
        await self._file_timers(timer_bucket(day, tid), "done", [tid])

    async def clock_offset(self) -> float:
        doc = await self.control.find_one({"_id": "clock"})
        return float(doc["offset_seconds"]) if doc else 0.0

    async def set_clock_offset(self, seconds: float) -> None:
        await self.control.update_one({"_id": "clock"}, {"$set": {"offset_seconds": seconds}}, upsert=True)

    # --- desk actions -------------------------------------------------------------------------------

    async def record_action(self, action_id: str, record: Mapping[str, Any]) -> Document:
        """The outcome of a desk action, decided once; a redelivery reads the first decision back."""
        doc = await self.actions.find_one_and_update(
            {"_id": action_id}, {"$setOnInsert": dict(record)}, upsert=True, return_document=ReturnDocument.AFTER
        )
        assert doc is not None
        return doc

    async def update_action(self, action_id: str, fields: Mapping[str, Any]) -> None:
        await self.actions.update_one({"_id": action_id}, {"$set": dict(fields)})

    # --- dead letters -------------------------------------------------------------------------------

    async def record_dead_letter(self, letter_id: str, record: Mapping[str, Any]) -> None:
        await self.dead_letters.update_one({"_id": letter_id}, {"$setOnInsert": dict(record)}, upsert=True)
