"""Cases, receipts and the repeat index on MongoDB. Every read and write filters on `_id` alone (see
ferretdb.py for why), so each is a primary-key lookup on either server."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from shared.adapters.mongo.documents import (
    CASE_PROJECTION,
    PERSONAL,
    Document,
    case_document,
    case_fields,
    case_from_document,
    entry_document,
    entry_from_document,
    personal_fields,
)
from shared.adapters.mongo.ferretdb import VersionClaims
from shared.adapters.mongo.personal import Sealer
from shared.adapters.mongo.shardlog import ShardLog, case_key, field_key
from shared.adapters.projection import Projection
from shared.domain.case import Case
from shared.domain.change import Change, TimelineEntry
from shared.domain.lifecycle import OPEN_STATUSES, CaseStatus
from shared.domain.repeats import MAX_KEYED_CASES, CaseFingerprint, signature_of
from shared.handling import Contended


class MongoCases:
    def __init__(self, cases: AsyncCollection[Document], claims: VersionClaims | None,
                 projection: Projection, sealer: Sealer | None = None) -> None:
        self.collection = cases
        self.claims = claims  # None on MongoDB, where the update itself compares the version
        self.projection = projection  # the queue and the figures, kept in step by every save
        self.sealer = sealer  # None in a process without the master key: it may not store a complainant

    async def get(self, case_id: str) -> Case | None:
        doc = await self.collection.find_one({"_id": case_id}, CASE_PROJECTION)
        return case_from_document(doc) if doc else None

    async def add(self, case: Case, change: Change) -> bool:
        doc = case_document(case, change.entries)
        if case.complainant:
            doc.update(await personal_fields(case, self.sealer))
        result = await self.collection.update_one({"_id": case.id}, {"$setOnInsert": doc}, upsert=True)
        return result.upserted_id is not None

    async def save(self, case: Case, change: Change) -> None:
        """Write the change, then bring the queue and the figures in step; a change that changed nothing (a
        replay) writes no case but still brings them in step, in case the first delivery stopped in between."""
        if change.changed:
            await self._write(case, change)
        await self.projection.saved(case, change, lambda: self.timeline(case.id))

    async def _write(self, case: Case, change: Change) -> None:
        version = case.version
        fields = case_fields(case, change.fields - {"version"})
        if PERSONAL in change.fields:
            fields.update(await personal_fields(case, self.sealer))
        update: Document = {"$set": {**fields, "version": version + 1}}
        if change.entries:
            update["$push"] = {"timeline": {"$each": [entry_document(e) for e in change.entries]},
                               "timeline_ids": {"$each": [e.id for e in change.entries]}}
        op_id = change.entries[0].id if change.entries else f"fields:{sorted(change.fields)}"
        if self.claims is not None:
            await self.claims.update(self.collection, case.id, version, update, op_id)
        else:
            result = await self.collection.update_one({"_id": case.id, "version": version}, update)
            if result.matched_count != 1:
                raise Contended(f"case {case.id} moved past version {version}")
        case.version = version + 1

    async def fingerprints(self, case_ids: Sequence[str]) -> list[CaseFingerprint]:
        shown = {"status": 1, "text": 1, "complainant_key": 1, "received_at": 1}
        docs = await asyncio.gather(*(self.collection.find_one({"_id": c}, shown) for c in case_ids))
        return [CaseFingerprint(doc["_id"], doc.get("complainant_key"), signature_of(doc.get("text", "")),
                                doc["received_at"])
                for doc in docs if doc and CaseStatus(doc["status"]) in OPEN_STATUSES]

    async def timeline(self, case_id: str) -> list[TimelineEntry]:
        doc = await self.collection.find_one({"_id": case_id}, {"timeline": 1})
        return [entry_from_document(e) for e in (doc or {}).get("timeline", [])]


class MongoReceipts:
    def __init__(self, receipts: AsyncCollection[Document]) -> None:
        self.collection = receipts

    async def claim(self, receipt: str, case_id: str, at: datetime) -> str:
        doc = await self.collection.find_one_and_update(
            {"_id": receipt}, {"$setOnInsert": {"case_id": case_id, "at": at}},
            upsert=True, return_document=ReturnDocument.AFTER,
        )
        assert doc is not None  # an upsert always returns the document
        return str(doc["case_id"])

    async def case_of(self, receipt: str) -> str | None:
        doc = await self.collection.find_one({"_id": receipt})
        return str(doc["case_id"]) if doc else None


class MongoRepeatIndex:
    """Each repeat key a log of revisions (shardlog.py), not an updated document: two intake instances filing
    under one key at once must each see the other's filing or be seen by it (one of two concurrent updates
    of a document may be lost on FerretDB, and with it the case a later report should have joined)."""

    def __init__(self, keys: AsyncCollection[Document], records: AsyncCollection[Document]) -> None:
        # Snapshots every 16 revisions: a key read cold replays a few records. Keys are many and read rarely,
        # so this process keeps no copy of them (`forget`).
        self.book = ShardLog(keys, records, snapshot_every=16)

    async def file_under(self, keys: Sequence[str], case_id: str) -> dict[str, list[str]]:
        before = await asyncio.gather(*(self.book.append(key, _filing(case_id)) for key in keys))
        for key in keys:
            self.book.forget(key)
        filed = {key: [case_key(c) for c in cases] for key, cases in zip(keys, before, strict=True)}
        # A flood of reports from one number must not make every look-up slower: keep the most recent.
        await asyncio.gather(*(self._unfile(key, [c for c in cases if c != case_id][:-(MAX_KEYED_CASES - 1)])
                               for key, cases in filed.items() if len(cases) >= MAX_KEYED_CASES))
        return filed

    async def unfile(self, keys: Sequence[str], case_id: str) -> None:
        await asyncio.gather(*(self._unfile(key, [case_id]) for key in keys))

    async def _unfile(self, key: str, case_ids: Sequence[str]) -> None:
        if case_ids:
            await self.book.change(key, *({"key": field_key(c), "op": "remove", "v": _TAKEN_BACK} for c in case_ids))
            self.book.forget(key)

    async def adopt(self, legacy: AsyncCollection[Document]) -> int:
        """File again, in the keys' logs, what an earlier version kept in updated documents (`repeat_keys`:
        `cases`, oldest first); returns how many keys moved. Safe in every process at once: a filing made twice
        counts once."""
        moved = 0
        async for doc in legacy.find({}):
            if doc.get("cases"):  # in one revision, in their order
                await self.book.append(str(doc["_id"]), *(_filing(case_id) for case_id in doc["cases"]))
            self.book.forget(str(doc["_id"]))
            await legacy.delete_one({"_id": doc["_id"]})
            moved += 1
        return moved

    async def erase(self, key: str) -> None:
        """Every record of one key gone (a complainant's erasure): the history of their filings goes with it."""
        await self.book.erase(key)


_FILED, _TAKEN_BACK = 1, 2  # versions: a filing is removed by a take-back, and filed again after one


def _filing(case_id: str) -> Document:
    return {"key": field_key(case_id), "op": "put", "v": _FILED, "entry": f"[{_FILED}]"}
