"""The case store on MongoDB (or FerretDB), through PyMongo's native AsyncMongoClient.

Every write is idempotent: documents have ids derived from the event that causes them, creations are
upserts with `$setOnInsert`, and status changes are conditional on the status they start from, so a
redelivered event changes nothing. Only operations FerretDB's SQLite backend supports are used
(no transactions, TTL indexes, change streams, `$lookup` or `$facet`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from shared.config import Settings
from shared.domain.case import CaseStatus
from shared.domain.triage import Assessment

Document = dict[str, Any]


def assessment_document(assessment: Assessment) -> Document:
    """An assessment as stored: FerretDB cannot keep nested arrays, so scores become objects."""
    doc = assessment.model_dump(mode="json")
    doc["top_categories"] = [{"category": c, "probability": p} for c, p in doc["top_categories"]]
    return doc


def assessment_from_document(doc: Mapping[str, Any]) -> Assessment:
    data = dict(doc)
    data["top_categories"] = [(s["category"], s["probability"]) for s in data.get("top_categories", [])]
    return Assessment.model_validate(data)


class CaseStore:
    def __init__(self, client: AsyncMongoClient[Document], database: str) -> None:
        self.client = client
        self.db: AsyncDatabase[Document] = client[database]
        self.cases: AsyncCollection[Document] = self.db["cases"]
        self.receipts: AsyncCollection[Document] = self.db["receipts"]
        self.timeline: AsyncCollection[Document] = self.db["timeline"]
        self.routings: AsyncCollection[Document] = self.db["routings"]
        self.dead_letters: AsyncCollection[Document] = self.db["dead_letters"]
        self.timers: AsyncCollection[Document] = self.db["timers"]
        self.actions: AsyncCollection[Document] = self.db["desk_actions"]

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
        await self.cases.create_index([("status", ASCENDING)])
        await self.cases.create_index([("unit", ASCENDING), ("status", ASCENDING)])
        await self.cases.create_index([("complainant_key", ASCENDING)])
        await self.timeline.create_index([("case_id", ASCENDING), ("at", ASCENDING)])
        await self.routings.create_index([("case_id", ASCENDING)])
        await self.timers.create_index([("state", ASCENDING), ("due_at", ASCENDING)])

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

    async def open_case(self, case: Mapping[str, Any]) -> None:
        await self.cases.update_one({"_id": case["_id"]}, {"$setOnInsert": dict(case)}, upsert=True)

    # --- status changes -----------------------------------------------------------------------------

    async def advance(
        self,
        case_id: str,
        from_statuses: set[CaseStatus] | frozenset[CaseStatus],
        to_status: CaseStatus,
        fields: Mapping[str, Any],
        *,
        guard: Mapping[str, Any] | None = None,
    ) -> bool:
        """Move a case to `to_status` if it is in one of `from_statuses`; False if it was not."""
        query: Document = {"_id": case_id, "status": {"$in": [s.value for s in from_statuses]}}
        query.update(guard or {})
        result = await self.cases.update_one(query, {"$set": {**fields, "status": to_status.value}})
        return result.modified_count == 1

    async def get_case(self, case_id: str) -> Document | None:
        return await self.cases.find_one({"_id": case_id})

    async def record(self, case_id: str, entry_id: str, at: datetime, kind: str, **detail: Any) -> None:
        """Add an entry to the case's timeline, once."""
        await self.timeline.update_one(
            {"_id": f"{case_id}:{entry_id}"},
            {"$setOnInsert": {"case_id": case_id, "at": at, "kind": kind, "detail": detail}},
            upsert=True,
        )

    async def timeline_of(self, case_id: str) -> list[Document]:
        return await self.timeline.find({"case_id": case_id}).sort("at", ASCENDING).to_list(None)

    # --- routing ------------------------------------------------------------------------------------

    async def record_routing(self, case_id: str, attempt: int, decision: Mapping[str, Any]) -> bool:
        """One routing per case and attempt; False if this attempt was already routed."""
        result = await self.routings.update_one(
            {"_id": f"{case_id}:{attempt}"},
            {"$setOnInsert": {"case_id": case_id, "attempt": attempt, **decision}},
            upsert=True,
        )
        return result.upserted_id is not None

    # --- deadlines and timers -----------------------------------------------------------------------

    async def open_deadline(self, case_id: str, deadline: Mapping[str, Any]) -> bool:
        """Put a deadline on the case once; False if that rule was already open."""
        field = "deadlines." + str(deadline["rule"]).replace(".", "_")  # a dot would nest the path
        result = await self.cases.update_one(
            {"_id": case_id, field: {"$exists": False}}, {"$set": {field: dict(deadline)}}
        )
        return result.modified_count == 1

    async def schedule_timer(self, case_id: str, rule: str, due: str, kind: str, due_at: datetime) -> None:
        """A durable timer, once: its id names the deadline's due date, so an extension makes new ones."""
        await self.timers.update_one(
            {"_id": f"{case_id}:{rule}:{due}:{kind}"},
            {"$setOnInsert": {"case_id": case_id, "rule": rule, "due": due, "kind": kind, "due_at": due_at,
                              "state": "pending"}},
            upsert=True,
        )

    async def cancel_timers(self, case_id: str, rules: list[str] | None = None) -> None:
        query: Document = {"case_id": case_id, "state": "pending"}
        if rules is not None:
            query["rule"] = {"$in": rules}
        await self.timers.update_many(query, {"$set": {"state": "cancelled"}})

    async def claim_due_timer(
        self, due_by: datetime, now: datetime, owner: str, lease_until: datetime
    ) -> Document | None:
        """Atomically take one due timer (or one whose holder's lease ran out): no two instances get the same."""
        return await self.timers.find_one_and_update(
            {"$or": [{"state": "pending", "due_at": {"$lte": due_by}},
                     {"state": "firing", "lease_until": {"$lte": now}}]},
            {"$set": {"state": "firing", "owner": owner, "lease_until": lease_until}},
            sort=[("due_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    async def finish_timer(self, timer_id: str, outcome: str, at: datetime) -> None:
        await self.timers.update_one({"_id": timer_id, "state": "firing"},
                                     {"$set": {"state": outcome, "fired_at": at}})

    async def clock_offset(self) -> float:
        doc = await self.db["control"].find_one({"_id": "clock"})
        return float(doc["offset_seconds"]) if doc else 0.0

    async def set_clock_offset(self, seconds: float) -> None:
        await self.db["control"].update_one({"_id": "clock"}, {"$set": {"offset_seconds": seconds}}, upsert=True)

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
