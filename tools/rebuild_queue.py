"""`triage rebuild-queue`: the desks' queue made again from the cases, for a store whose cases were routed
before the queue was kept (an upgrade), or whose queue was lost. Run it with the services stopped: it drops
the queue and files every open routed case at its current version, reading the cases collection whole (the one
scan in this project, and it is a tool's, not a request's)."""

from __future__ import annotations

from collections.abc import Callable

from pymongo import AsyncMongoClient

from shared.adapters.mongo.documents import QUEUE_ENTRY_PROJECTION, Document, case_from_document
from shared.adapters.mongo.queue import MongoDeskQueue
from shared.domain.queue import entry_of


async def rebuild_queue(uri: str, database: str, progress: Callable[[str], None] = print) -> int:
    """Drop the queue and file every open routed case again; returns how many were filed."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri, tz_aware=True, maxPoolSize=16)
    try:
        db = client[database]
        await db.drop_collection("desk_queue")
        await db.drop_collection("desk_queue_log")
        queue = MongoDeskQueue(db["desk_queue"], db["desk_queue_log"])
        filed = 0
        async for doc in db["cases"].find({}, QUEUE_ENTRY_PROJECTION, batch_size=1000):
            entry = entry_of(case_from_document(doc))
            if entry is not None:
                await queue.put(entry)
                filed += 1
                if filed % 1000 == 0:
                    progress(f"rebuild-queue: {filed} cases filed")
        return filed
    finally:
        await client.close()
