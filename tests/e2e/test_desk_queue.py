"""The desks' queue on the real store (FerretDB here): FerretDB loses one of two concurrent updates of a
document, so these check that the shards' log of revisions keeps every write, in any order, from any writer,
and that every process reads what the others wrote."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.mongo import MongoStorage
from shared.adapters.mongo.documents import case_document
from shared.adapters.mongo.queue import (
    SHARDS,
    SNAPSHOT_EVERY,
    MongoDeskQueue,
    entry_document,
    shard_id,
    shard_of,
)
from shared.adapters.mongo.shardlog import field_key
from shared.config import Settings
from shared.domain.case import Case
from shared.domain.change import Change
from shared.domain.lifecycle import CaseStatus
from shared.domain.queue import QueueEntry, entry_of
from shared.domain.triage import Unit, Urgency
from tools import infra
from tools.rebuild_queue import rebuild_queue

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


async def test_a_revision_another_process_logged_is_read_by_every_other(storage: MongoStorage) -> None:
    reader, writer = writers(storage, 2)
    await reader.put(entry("GT-1", 1))
    assert await versions(reader) == {"GT-1": 1}  # the reader now knows the shard
    await writer.put(entry("GT-1", 2))
    await writer.put(entry("GT-2", 1))
    assert await versions(reader) == {"GT-1": 2, "GT-2": 1}  # caught up from the log, one lookup a record
    await reader.put(entry("GT-1", 2))  # filed already at 2: nothing logged
    fresh = writers(storage, 1)[0]
    assert await versions(fresh) == {"GT-1": 2, "GT-2": 1}


async def test_snapshots_are_taken_and_an_older_one_landing_last_changes_nothing(storage: MongoStorage) -> None:
    queue = storage.desk_queue
    same_shard = [i for i in (f"GT-{n}" for n in range(4000)) if shard_of(i) == shard_of("GT-0")][:SNAPSHOT_EVERY + 3]
    shard = shard_id(Unit.MEDIATION, shard_of("GT-0"))
    for case_id in same_shard[:SNAPSHOT_EVERY]:
        await queue.put(entry(case_id, 1))
    snapshot = await queue.shards.find_one({"_id": shard})
    assert snapshot is not None and snapshot["rev"] == SNAPSHOT_EVERY and len(snapshot["cases"]) == SNAPSHOT_EVERY
    for case_id in same_shard[SNAPSHOT_EVERY:]:
        await queue.put(entry(case_id, 1))
    first = {field_key(same_shard[0]): entry_document(entry(same_shard[0], 1))}  # the state at revision 1
    await queue.shards.replace_one({"_id": shard}, {"_id": shard, "rev": 1, "cases": first})  # late, older
    assert await versions(writers(storage, 1)[0]) == dict.fromkeys(same_shard, 1)  # replayed from the log


async def test_an_unreadable_entry_is_left_out_and_the_rest_is_read(storage: MongoStorage) -> None:
    queue = storage.desk_queue
    await queue.put(entry("GT-good", 1))
    shard = shard_id(Unit.MEDIATION, shard_of("GT-bad"))
    await queue.shards.update_one({"_id": shard}, {"$set": {"cases.GT-bad": "{not json", "rev": 0}}, upsert=True)
    assert await versions(writers(storage, 1)[0]) == {"GT-good": 1}
    await queue.put(entry("GT-bad", 1))  # a good version replaces it
    assert await versions(writers(storage, 1)[0]) == {"GT-good": 1, "GT-bad": 1}


async def test_saving_a_case_files_it_in_its_units_queue(storage: MongoStorage) -> None:
    case = Case(id="GT-saved", channel="12345", text="工资拖欠", received_at=T0, status=CaseStatus.CLASSIFIED)
    assert await storage.cases.add(case, Change())
    case.status, case.unit = CaseStatus.ROUTED, Unit.LEGAL
    await storage.cases.save(case, Change(fields={"status", "unit"}))
    assert await versions(storage.desk_queue, Unit.LEGAL) == {"GT-saved": 1}
    case.status, case.unit, case.excluded_units = CaseStatus.ROUTED, Unit.POLICE, [Unit.LEGAL]  # handed back
    await storage.cases.save(case, Change(fields={"status", "unit", "excluded_units"}))
    assert await versions(storage.desk_queue, Unit.LEGAL) == {}
    assert await versions(storage.desk_queue, Unit.POLICE) == {"GT-saved": 2}
    case.status = CaseStatus.CLOSED
    await storage.cases.save(case, Change(fields={"status"}))
    assert await versions(storage.desk_queue, Unit.POLICE) == {}


async def test_the_queue_is_rebuilt_from_the_cases(storage: MongoStorage, endpoints: infra.Endpoints) -> None:
    routed = Case(id="GT-before", channel="12345", text="早先派出的案件", received_at=T0, status=CaseStatus.ROUTED,
                  unit=Unit.VISITOR, version=3)
    closed = routed.model_copy(update={"id": "GT-closed", "status": CaseStatus.CLOSED})
    waiting = routed.model_copy(update={"id": "GT-waiting", "status": CaseStatus.CLASSIFIED, "unit": None})
    await storage.db["cases"].insert_many([case_document(c, []) for c in (routed, closed, waiting)])
    await storage.desk_queue.put(entry("GT-gone", 1, Unit.VISITOR))  # lost track of: the rebuild drops it
    assert await rebuild_queue(endpoints.mongodb_uri, storage.db.name, progress=lambda _: None) == 1
    assert await versions(writers(storage, 1)[0], Unit.VISITOR) == {"GT-before": 3}
