"""The desks' queue on the real store (FerretDB here): FerretDB loses one of two concurrent updates of a
document, so these check that the shards' log of revisions keeps every write, in any order, from any writer."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.mongo import MongoStorage
from shared.adapters.mongo.queue import SHARDS, MongoDeskQueue, entry_document, field_key, shard_id, shard_of
from shared.config import Settings
from shared.domain.case import Case
from shared.domain.change import Change
from shared.domain.lifecycle import CaseStatus
from shared.domain.queue import QueueEntry, entry_of
from shared.domain.triage import Unit, Urgency
from tools import infra

pytestmark = [pytest.mark.e2e]
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def storage(endpoints: infra.Endpoints) -> AsyncIterator[MongoStorage]:
    settings = Settings(dev_mode=True, mongodb_uri=endpoints.mongodb_uri,
                        mongodb_database=f"triage_queue_{uuid.uuid4().hex[:8]}")
    store = MongoStorage.from_settings(settings, "queue-test")
    await store.prepare()
    yield store
    await store.client.drop_database(settings.mongodb_database)
    await store.close()


def entry(case_id: str, version: int, unit: Unit = Unit.MEDIATION) -> QueueEntry:
    case = Case(id=case_id, channel="12345", text=f"案件 {case_id}", received_at=T0 + timedelta(seconds=version),
                status=CaseStatus.ROUTED, unit=unit, version=version, urgency=Urgency.NORMAL)
    found = entry_of(case)
    assert found is not None
    return found


def writers(storage: MongoStorage, count: int = 5) -> list[MongoDeskQueue]:
    """Queues as separate processes hold them: each its own group commit, so they race at the store."""
    return [MongoDeskQueue(storage.desk_queue.shards, storage.desk_queue.log) for _ in range(count)]


async def versions(queue: MongoDeskQueue, unit: Unit = Unit.MEDIATION) -> dict[str, int]:
    return {e.case_id: e.version for e in await queue.entries(unit)}


async def test_concurrent_puts_in_any_order_end_with_the_newest(storage: MongoStorage) -> None:
    order = list(range(1, 21))
    random.shuffle(order)
    queues = writers(storage)
    await asyncio.gather(*(queues[v % 5].put(entry("GT-race", v)) for v in order))
    assert await versions(storage.desk_queue) == {"GT-race": 20}
    [found] = await storage.desk_queue.entries(Unit.MEDIATION)
    # Every field read back as written, but the excerpt: shown rows are read from their cases.
    assert found == replace(entry("GT-race", 20), excerpt="")


async def test_a_remove_at_an_old_version_leaves_a_newer_entry(storage: MongoStorage) -> None:
    queue = storage.desk_queue
    await queue.put(entry("GT-a.b$c", 7))
    await queue.remove("GT-a.b$c", Unit.MEDIATION, 7)
    await queue.put(entry("GT-a.b$c", 6))
    assert await versions(queue) == {"GT-a.b$c": 7}
    await queue.remove("GT-a.b$c", Unit.MEDIATION, 8)
    assert await versions(queue) == {}


async def test_many_cases_over_every_shard_read_back_completely(storage: MongoStorage) -> None:
    ids = [f"GT-20260302-{n:04d}" for n in range(500)]
    assert len({shard_of(i) for i in ids}) == SHARDS
    queues = writers(storage)
    await asyncio.gather(*(queues[n % 5].put(entry(i, 1)) for n, i in enumerate(ids)))
    assert await versions(storage.desk_queue) == dict.fromkeys(ids, 1)
    assert await versions(storage.desk_queue, Unit.POLICE) == {}


async def test_a_change_logged_but_not_written_is_read_and_finished_by_the_next_writer(storage: MongoStorage) -> None:
    queue = storage.desk_queue
    await queue.put(entry("GT-1", 1))
    shard = shard_id(Unit.MEDIATION, shard_of("GT-1"))
    doc = await queue.shards.find_one({"_id": shard})
    assert doc is not None
    # A writer took revision `rev` and died before writing the shard.
    await queue.log.insert_one({"_id": f"{shard}@{doc['rev']}",
                                "changes": [{"key": field_key("GT-1"), "op": "put", "v": 2, "entry": entry_document(entry("GT-1", 2))}]})
    assert await versions(queue) == {"GT-1": 2}  # readers apply it
    await queue.remove("GT-1", Unit.MEDIATION, 2)  # nothing to do at version 2, but the writer finishes it
    after = await queue.shards.find_one({"_id": shard})
    assert after is not None and after["rev"] == doc["rev"] + 1
    assert after["cases"][field_key("GT-1")] == entry_document(entry("GT-1", 2))


async def test_a_shard_write_undone_by_a_late_one_is_still_read(storage: MongoStorage) -> None:
    queue = storage.desk_queue
    same_shard = [i for i in (f"GT-{n}" for n in range(400)) if shard_of(i) == shard_of("GT-0")][:3]
    await queue.put(entry(same_shard[0], 1))
    shard = shard_id(Unit.MEDIATION, shard_of("GT-0"))
    early = await queue.shards.find_one({"_id": shard})
    assert early is not None
    for case_id in same_shard[1:]:
        await queue.put(entry(case_id, 1))
    await queue.shards.replace_one({"_id": shard}, early)  # a delayed write of revision 1 lands last
    assert await versions(queue) == dict.fromkeys(same_shard, 1)


async def test_an_unreadable_entry_is_left_out_and_the_rest_is_read(storage: MongoStorage) -> None:
    queue = storage.desk_queue
    await queue.put(entry("GT-good", 1))
    shard = shard_id(Unit.MEDIATION, shard_of("GT-bad"))
    await queue.shards.update_one({"_id": shard}, {"$set": {"cases.GT-bad": "{not json"}, "$setOnInsert": {"rev": 0}},
                                   upsert=True)
    assert await versions(queue) == {"GT-good": 1}
    await queue.put(entry("GT-bad", 1))  # a good version replaces it
    assert await versions(queue) == {"GT-good": 1, "GT-bad": 1}


async def test_saving_a_case_files_it_in_its_units_queue(storage: MongoStorage) -> None:
    case = Case(id="GT-saved", channel="12345", text="工资拖欠", received_at=T0, status=CaseStatus.CLASSIFIED)
    assert await storage.cases.add(case, Change())
    case.status, case.unit = CaseStatus.ROUTED, Unit.LEGAL
    await storage.cases.save(case, Change(fields={"status", "unit"}))
    assert await versions(storage.desk_queue, Unit.LEGAL) == {"GT-saved": 1}
    case.status, case.unit = CaseStatus.ROUTED, Unit.POLICE
    await storage.cases.save(case, Change(fields={"status", "unit"}))
    assert await versions(storage.desk_queue, Unit.LEGAL) == {}
    assert await versions(storage.desk_queue, Unit.POLICE) == {"GT-saved": 2}
    case.status = CaseStatus.CLOSED
    await storage.cases.save(case, Change(fields={"status"}))
    assert await versions(storage.desk_queue, Unit.POLICE) == {}
