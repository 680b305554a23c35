"""What the desk API reads and keeps on MongoDB: cases, their queue, action outcomes, sessions, submissions
and the disclosure audit. Every read and write is by `_id` (FerretDB serves nothing else from an index),
and outages become StoreUnavailable (a 503, not a 500)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from pymongo import ReturnDocument
from pymongo.errors import ConnectionFailure, EncryptionError, ExecutionTimeout, WTimeoutError

from shared.adapters.mongo.documents import QUEUE_ENTRY_PROJECTION, case_from_document
from shared.adapters.mongo.ferretdb import Document, objects_as_pairs
from shared.adapters.mongo.personal import unsealed_complainant
from shared.domain.queue import QueueEntry, entry_of
from shared.domain.triage import Unit
from shared.ports import StoreUnavailable

T = TypeVar("T")
# A reveal's decryption fails when the key vault is out of reach or the master key does not open the data key.
_OUTAGES = (ConnectionFailure, ExecutionTimeout, WTimeoutError, ConnectionError, TimeoutError, EncryptionError)


async def _guard(operation: Callable[[], Awaitable[T]]) -> T:
    try:
        return await operation()
    except _OUTAGES as exc:
        raise StoreUnavailable(type(exc).__name__) from exc


class MongoSessionBook:
    def __init__(self, storage: Any) -> None:
        self.collection = storage.db["desk_sessions"]

    async def open(self, key: str, record: Mapping[str, Any]) -> None:
        await _guard(lambda: self.collection.insert_one({"_id": key, **record}))

    async def find(self, key: str) -> Mapping[str, Any] | None:
        return await _guard(lambda: self.collection.find_one({"_id": key}))

    async def close(self, key: str) -> None:
        await _guard(lambda: self.collection.delete_one({"_id": key}))


class MongoDeskReads:
    def __init__(self, storage: Any) -> None:
        self.storage = storage
        self.cases = storage.db["cases"]
        self.actions = storage.db["desk_actions"]
        self.submissions = storage.db["desk_submissions"]
        self.disclosures = storage.db["disclosure_audit"]
        self.sessions = MongoSessionBook(storage)

    async def ping(self) -> bool:
        return bool(await self.storage.ping())

    async def queue(self, unit: Unit) -> list[QueueEntry]:
        return await _guard(lambda: self.storage.desk_queue.entries(unit))

    async def verify(self, unit: Unit, entries: Sequence[QueueEntry]) -> list[QueueEntry]:
        """The rows as their cases stand now. A case that is no longer this unit's open work (its move was
        filed in the queue but not yet taken out of this unit's, say) is dropped, and taken out."""
        docs = await _guard(lambda: asyncio.gather(*(self.cases.find_one({"_id": e.case_id}, QUEUE_ENTRY_PROJECTION)
                                                     for e in entries)))
        rows: list[QueueEntry] = []
        for filed, doc in zip(entries, docs, strict=True):
            now = entry_of(case_from_document(doc)) if doc else None
            if now is not None and now.unit is unit:
                rows.append(now)
            elif doc is not None:
                await self._take_out(filed.case_id, unit, int(doc.get("version", 0)))
        return rows

    async def _take_out(self, case_id: str, unit: Unit, version: int) -> None:
        await _guard(lambda: self.storage.desk_queue.remove(case_id, unit, version))

    async def get_case(self, case_id: str) -> Document | None:
        case: Document | None = await _guard(lambda: self.cases.find_one({"_id": case_id}, {"timeline": 0}))
        assessment = (case or {}).get("assessment")
        if case is not None and isinstance(assessment, dict):  # stored as objects on FerretDB: pairs again
            case["assessment"] = {**assessment, "top_categories": objects_as_pairs(
                assessment.get("top_categories", []), "category", "probability")}
        return case

    async def timeline_of(self, case_id: str) -> list[Document]:
        case = await _guard(lambda: self.cases.find_one({"_id": case_id}, {"timeline": 1}))
        return sorted((case or {}).get("timeline", []), key=lambda entry: entry["at"])

    async def get_action(self, action_id: str) -> Document | None:
        return await _guard(lambda: self.actions.find_one({"_id": action_id}))

    async def claim_submission(self, action_id: str, record: Mapping[str, Any]) -> Document:
        """Keep the first submission under this id (an Idempotency-Key's); returns the one kept."""
        doc = await _guard(lambda: self.submissions.find_one_and_update(
            {"_id": action_id}, {"$setOnInsert": dict(record)}, upsert=True, return_document=ReturnDocument.AFTER))
        assert doc is not None  # an upsert always returns the document
        return dict(doc)

    async def reveal_complainant(self, case: Mapping[str, Any], fields: Sequence[str]) -> dict[str, str]:
        return await _guard(lambda: unsealed_complainant(case.get("complainant"), fields, self.storage.personal))

    async def record_disclosure(self, record_id: str, record: Mapping[str, Any]) -> None:
        await _guard(lambda: self.disclosures.insert_one({"_id": record_id, **record}))
