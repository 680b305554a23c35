"""Desk action outcomes, dead letters and the simulated clock on MongoDB."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from shared.adapters.mongo.ferretdb import Document


class MongoActionLog:
    def __init__(self, actions: AsyncCollection[Document]) -> None:
        self.collection = actions

    async def record(self, action_id: str, record: Mapping[str, Any]) -> Mapping[str, Any]:
        doc = await self.collection.find_one_and_update(
            {"_id": action_id}, {"$setOnInsert": dict(record)}, upsert=True, return_document=ReturnDocument.AFTER
        )
        assert doc is not None  # an upsert always returns the document
        return doc

    async def get(self, action_id: str) -> Mapping[str, Any] | None:
        return await self.collection.find_one({"_id": action_id})


class MongoDeadLetters:
    def __init__(self, letters: AsyncCollection[Document]) -> None:
        self.collection = letters

    async def record(self, letter_id: str, record: Mapping[str, Any]) -> None:
        await self.collection.update_one({"_id": letter_id}, {"$setOnInsert": dict(record)}, upsert=True)

    async def has(self, letter_id: str) -> bool:
        return await self.collection.find_one({"_id": letter_id}, {"_id": 1}) is not None


class MongoClock:
    def __init__(self, control: AsyncCollection[Document]) -> None:
        self.collection = control

    async def offset_seconds(self) -> float:
        doc = await self.collection.find_one({"_id": "clock"})
        return float(doc["offset_seconds"]) if doc else 0.0

    async def set_offset_seconds(self, seconds: float) -> None:
        await self.collection.update_one({"_id": "clock"}, {"$set": {"offset_seconds": seconds}}, upsert=True)
