"""The desk API's reads on MongoDB, with outages turned into StoreUnavailable (a 503, not a 500)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from pymongo import ASCENDING
from pymongo.errors import ConnectionFailure, ExecutionTimeout, WTimeoutError

from shared.adapters.mongo.ferretdb import Document
from shared.ports import StoreUnavailable

T = TypeVar("T")
_OUTAGES = (ConnectionFailure, ExecutionTimeout, WTimeoutError, ConnectionError, TimeoutError)


class MongoDeskReads:
    def __init__(self, storage: Any, summary_fields: Iterable[str]) -> None:
        self.storage = storage
        self.cases = storage.db["cases"]
        self.actions = storage.db["desk_actions"]
        self.summary = dict.fromkeys(summary_fields, 1)  # the complainant is never read for a queue

    async def _guard(self, operation: Callable[[], Awaitable[T]]) -> T:
        try:
            return await operation()
        except _OUTAGES as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    async def ping(self) -> bool:
        return bool(await self.storage.ping())

    async def find_cases(self, query: Mapping[str, Any], limit: int) -> list[Document]:
        return await self._guard(
            lambda: self.cases.find(dict(query), self.summary).sort("received_at", ASCENDING).limit(limit).to_list(None)
        )

    async def get_case(self, case_id: str) -> Document | None:
        return await self._guard(lambda: self.cases.find_one({"_id": case_id}, {"timeline": 0, "assessment": 0}))

    async def timeline_of(self, case_id: str) -> list[Document]:
        case = await self._guard(lambda: self.cases.find_one({"_id": case_id}, {"timeline": 1}))
        return sorted((case or {}).get("timeline", []), key=lambda entry: entry["at"])

    async def get_action(self, action_id: str) -> Document | None:
        return await self._guard(lambda: self.actions.find_one({"_id": action_id}))
