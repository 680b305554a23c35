"""The store under many writes at once: FerretDB's SQLite backend stops answering for good when some hundred
updates of one database wait at once, so the MongoDB adapter keeps a few commands in flight per process.
(With a pool of 100 per process this test stalled FerretDB here.)"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from shared.adapters.mongo import MongoStorage
from shared.config import Settings
from shared.handling import Backoff, retry_transient
from tools import infra

pytestmark = [pytest.mark.e2e]


async def test_many_writes_at_once_all_finish(endpoints: infra.Endpoints) -> None:
    settings = Settings(dev_mode=True, mongodb_uri=endpoints.mongodb_uri,
                        mongodb_database=f"triage_load_{uuid.uuid4().hex[:8]}")
    storages = [MongoStorage.from_settings(settings, f"load-{n}") for n in range(5)]  # the five processes
    try:
        assert all(s.client.options.pool_options.max_pool_size == settings.mongodb_max_connections for s in storages)
        keys = [f"who:load-{k}" for k in range(12)]

        async def report(n: int) -> None:
            """A repeat-key filing (an update of a shared document) as intake makes it: retried when a
            concurrent upsert of the same key won the race."""
            await retry_transient(lambda: storages[n % 5].repeats.file_under([keys[n % 12]], f"GT-LOAD-{n}"),
                                  service="load", backoff=Backoff(0.05, 0.5))

        async with asyncio.timeout(180):
            await asyncio.gather(*(report(n) for n in range(1500)))
        filed = await storages[0].repeats.file_under(keys, "GT-LOAD-last")
        assert all(cases for cases in filed.values())  # and the store still answers
    finally:  # a stalled store answers nothing: the test fails rather than hang
        async with asyncio.timeout(30):
            await storages[0].client.drop_database(settings.mongodb_database)
            for storage in storages:
                await storage.close()
