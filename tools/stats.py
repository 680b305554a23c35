"""`triage stats rebuild`: the facts of the supervisors' figures filed again from the cases' timelines, for a
store whose cases were worked before the figures were kept (an upgrade), or whose figures were lost. Run it
with the services stopped: it drops the figures and reads the cases collection whole (a tool's scan, never a
request's). The facts are the ones every save files (shared/domain/facts.py), so the result equals the figures
kept as the cases were worked."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pymongo import AsyncMongoClient

from shared.adapters.mongo.documents import Document, case_from_document, entry_from_document
from shared.adapters.mongo.figures import MongoFigures
from shared.domain.facts import facts_of_case
from shared.domain.workdays import default_calendar

BATCH = 200  # cases whose facts are filed together


async def rebuild_figures(uri: str, database: str, progress: Callable[[str], None] = print,
                          into: str = "figures") -> tuple[int, int]:
    """Drop the figures' collections (`into`, `<into>_log`) and file every case's facts again; returns (cases,
    facts)."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri, tz_aware=True, maxPoolSize=16)
    calendar = default_calendar()
    try:
        db = client[database]
        await db.drop_collection(into)
        await db.drop_collection(f"{into}_log")
        figures = MongoFigures(db[into], db[f"{into}_log"])
        cases = facts = 0
        pending: list[asyncio.Task[None]] = []
        async for doc in db["cases"].find({}, batch_size=500):
            try:
                found = facts_of_case(case_from_document(doc),
                                      [entry_from_document(e) for e in doc.get("timeline", [])], calendar)
            except (KeyError, TypeError, ValueError) as exc:  # a document no version of the code wrote
                progress(f"stats rebuild: case {doc.get('_id')!r} left out, its timeline cannot be read: {exc}")
                continue
            pending.append(asyncio.create_task(figures.add(found)))
            cases, facts = cases + 1, facts + len(found)
            if len(pending) == BATCH:
                await asyncio.gather(*pending)
                pending.clear()
            if cases % 5000 == 0:
                progress(f"stats rebuild: {cases} cases, {facts} facts filed")
        await asyncio.gather(*pending)
        return cases, facts
    finally:
        await client.close()
