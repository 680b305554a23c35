"""What the gateway reads and keeps. Every read of a case is by `_id` (FerretDB: only those are fast).

The gateway's own records, in `open311_requests` (`_id` = the case id it answers with): which upstream filed
the request, its token, service code and time, and the coordinates it was given (a case keeps only a place
name). `open311_tokens` maps a token to that case id. A list reads an upstream's records by scanning
`open311_requests`, which holds only what came through this gateway.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from shared.adapters.mongo import MongoStorage

Document = dict[str, Any]
# What an answer is made of: no complainant, no complainant key.
CASE_FIELDS: Document = dict.fromkeys((
    "status", "unit", "category", "text", "location", "received_at", "updated_at", "resolved_at", "closed_at",
    "deadlines", "timeline"), 1)


class Open311Store(Protocol):
    async def file(self, record: Document) -> None:
        """Keep a request the gateway accepted (its `_id` is the case id, `token` its token)."""

    async def record(self, case_id: str) -> Document | None: ...

    async def records(self, upstream: str, limit: int) -> list[Document]:
        """An upstream's requests, newest first."""

    async def token(self, token: str) -> Document | None: ...

    async def case_of_receipt(self, receipt: str) -> str | None:
        """The case intake made of a report (a repeat joins an open case: not the one the gateway expected)."""

    async def case(self, case_id: str) -> Document | None: ...

    async def ping(self) -> bool: ...


class MongoOpen311Store:
    def __init__(self, storage: MongoStorage) -> None:
        self.storage = storage  # its receipts and its ping, not copies of them
        self.db = storage.db

    async def file(self, record: Document) -> None:
        await asyncio.gather(
            self.db["open311_requests"].update_one({"_id": record["_id"]}, {"$setOnInsert": record}, upsert=True),
            self.db["open311_tokens"].update_one(
                {"_id": record["token"]}, {"$setOnInsert": {"case_id": record["_id"], "upstream": record["upstream"]}},
                upsert=True))

    async def record(self, case_id: str) -> Document | None:
        return await self.db["open311_requests"].find_one({"_id": case_id})

    async def records(self, upstream: str, limit: int) -> list[Document]:
        found = [doc async for doc in self.db["open311_requests"].find({"upstream": upstream})]
        found.sort(key=lambda d: d["requested_at"], reverse=True)
        return found[:limit]

    async def token(self, token: str) -> Document | None:
        return await self.db["open311_tokens"].find_one({"_id": token})

    async def case_of_receipt(self, receipt: str) -> str | None:
        return await self.storage.receipts.case_of(receipt)

    async def case(self, case_id: str) -> Document | None:
        return await self.db["cases"].find_one({"_id": case_id}, CASE_FIELDS)

    async def ping(self) -> bool:
        return await self.storage.ping()

