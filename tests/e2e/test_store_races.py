"""Two processes writing the same documents at the same instant, on the real store: every write must count.

FerretDB applies an update by reading the document and writing it back whole, so of two concurrent updates of
one document it may keep one. These tests aim two stores (two connection pools, as two processes have) at the
same timer buckets and the same repeat keys at once, and count what was kept.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest

from shared.adapters.mongo import MongoStorage
from shared.config import Settings
from shared.domain.followup import TimerKind, TimerSpec
from shared.handling import Backoff, retry_transient
from tools import infra

pytestmark = [pytest.mark.e2e]
DAY = date(2026, 12, 14)


@pytest.fixture
async def two_stores(endpoints: infra.Endpoints) -> AsyncIterator[list[MongoStorage]]:
    settings = Settings(dev_mode=True, mongodb_uri=endpoints.mongodb_uri,
                        mongodb_database=f"triage_races_{uuid.uuid4().hex[:8]}")
    stores = [MongoStorage.from_settings(settings, f"twin-{n}") for n in range(2)]
    yield stores
    async with asyncio.timeout(30):
        await stores[0].client.drop_database(settings.mongodb_database)
        for store in stores:
            await store.close()


def timer(n: int) -> TimerSpec:
    return TimerSpec(f"GT-RACE-{n:05d}", "hotline.complaint", DAY.isoformat(), TimerKind.REMIND,
                     datetime(2026, 12, 14, 1, 0, tzinfo=UTC) + timedelta(seconds=n))


async def test_two_followups_filing_timers_of_one_day_lose_none(two_stores: list[MongoStorage]) -> None:
    timers = [timer(n) for n in range(2000)]

    async def file(n: int) -> None:  # as the follow-up does: a few timers per routed case, retried if contended
        batch = timers[n * 4:(n + 1) * 4]
        await retry_transient(lambda: two_stores[n % 2].timers.schedule(batch, DAY), service="race",
                              backoff=Backoff(0.05, 0.5))

    async with asyncio.timeout(300):
        await asyncio.gather(*(file(n) for n in range(len(timers) // 4)))
    filed = {t.id for t in await two_stores[0].timers.unfinished_on(DAY.isoformat())}
    print(f"\n{len(filed)} of {len(timers)} timers filed by two writers at once")
    assert filed == {t.id for t in timers}

    async def finish(n: int) -> None:  # the two scans finishing what they fired, at once
        await retry_transient(lambda: two_stores[n % 2].timers.finish(timers[n], DAY.isoformat()), service="race",
                              backoff=Backoff(0.05, 0.5))

    async with asyncio.timeout(300):
        await asyncio.gather(*(finish(n) for n in range(len(timers))))
    assert await two_stores[1].timers.unfinished_on(DAY.isoformat()) == []


async def test_two_intakes_filing_under_one_repeat_key_lose_none(two_stores: list[MongoStorage]) -> None:
    key = f"who:race-{uuid.uuid4().hex[:6]}"
    seen: dict[str, list[str]] = {}

    async def report(n: int) -> None:
        filed = await retry_transient(lambda: two_stores[n % 2].repeats.file_under([key], f"GT-REP-{n:03d}"),
                                      service="race", backoff=Backoff(0.05, 0.5))
        seen[f"GT-REP-{n:03d}"] = filed[key]

    async with asyncio.timeout(120):
        await asyncio.gather(*(report(n) for n in range(40)))
    # Filed one after another, the k-th writer saw the k-1 before it: the filings form one order.
    sizes = sorted(len(cases) for cases in seen.values())
    print(f"\nfilings seen before each of 40: {sizes}")
    assert sizes == list(range(40))


async def test_the_earlier_updated_documents_are_adopted_by_the_services_that_write_them(
        two_stores: list[MongoStorage]) -> None:
    """An upgrade: the timers and repeat keys an earlier version kept in updated documents are filed again in the
    logs at start, by the follow-up and by intake, in their order, and the earlier documents go."""
    intake, followup = two_stores
    db = intake.db
    timers = [timer(n) for n in range(3)]
    bucket = f"{DAY.isoformat()}#07"
    await db["timer_days"].insert_one({"_id": bucket, "timers": [
        {"id": t.id, "case_id": t.case_id, "rule": t.rule, "due": t.due, "kind": t.kind.value, "due_at": t.due_at}
        for t in timers], "done": [timers[1].id]})
    await db["repeat_keys"].insert_one({"_id": "who:earlier", "cases": ["GT-OLD-1", "GT-OLD-2"]})
    intake.service, followup.service = "intake", "followup"
    await intake.prepare()
    assert await db["timer_days"].count_documents({}) == 1  # intake leaves the timers to the follow-up
    await followup.prepare()
    assert {t.id for t in await followup.timers.unfinished_on(DAY.isoformat())} == {timers[0].id, timers[2].id}
    await followup.timers.finish(timers[0], DAY.isoformat())  # where a scan finishes it: in its own bucket
    assert {t.id for t in await followup.timers.unfinished_on(DAY.isoformat())} == {timers[2].id}
    assert await db["timer_days"].count_documents({}) == 0 and await db["repeat_keys"].count_documents({}) == 0
    assert (await intake.repeats.file_under(["who:earlier"], "GT-NEW"))["who:earlier"] == ["GT-OLD-1", "GT-OLD-2"]
