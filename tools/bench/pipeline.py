"""The pipeline under load: publish the cases, read case-routed until each is there, and ask the store
about the ones that never will be."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tools.bench.figures import STALL_SECONDS

if TYPE_CHECKING:
    from shared.events import ChannelEvent
    from tools.demo import RoutedWatcher

SETTLE_SECONDS = 5.0  # no new arrival for this long after the last publish: ask the store what is missing
Say = Callable[[str], None]


class StoreCheck:
    """Lookups by _id in the case store (FerretDB scans for anything else): which published events became
    routed cases, which joined an earlier open case as a repeat report (those are never routed)."""

    def __init__(self, mongodb: str, database: str) -> None:
        from pymongo import AsyncMongoClient

        from shared.adapters.mongo import MongoStorage

        self.storage = MongoStorage(AsyncMongoClient(mongodb, tz_aware=True), database)
        self.limit = asyncio.Semaphore(16)

    async def close(self) -> None:
        await self.storage.close()

    async def outcome(self, event: ChannelEvent) -> str:
        from shared.events import case_id_for, receipt_of

        case_id = case_id_for(event.channel, event.event_id)
        async with self.limit:
            case = await self.storage.cases.get(case_id)
            if case is not None and "0" in case.routings:
                return "routed"
            joined = await self.storage.receipts.case_of(receipt_of(event))
        return "merged" if joined is not None and joined != case_id else "missing"

    async def outcomes(self, events: list[ChannelEvent]) -> list[str]:
        return list(await asyncio.gather(*(self.outcome(event) for event in events)))

    async def dead_letters_since(self, since: datetime) -> int:
        return int(await self.storage.db["dead_letters"].count_documents({"at": {"$gte": since}}))


Settle = Callable[[set[str]], Awaitable[set[str]]]


async def await_routed(watcher: RoutedWatcher, awaited: set[str], *, publishing: asyncio.Task[Any] | None,
                       timeout: float, say: Say | None, settle: Settle | None = None) -> None:
    """Read case-routed until every awaited case is there or the deadline passes. Once the publishing is
    done and nothing new comes for SETTLE_SECONDS, `settle` names the missing cases that never will be (merged
    into an earlier case as repeats); after STALL_SECONDS without news the rest are given up on."""
    pending = set(awaited)
    deadline = time.monotonic() + timeout
    last_new, last_report, count, settled_at = time.monotonic(), time.monotonic(), 0, -1
    while not pending <= watcher.routed.keys() and time.monotonic() < deadline:
        await watcher.wait_for(pending, timeout=1.0)
        now = time.monotonic()
        routed = len(pending & watcher.routed.keys())
        if routed > count:
            count, last_new = routed, now
        published = publishing is None or publishing.done()
        if published and settle is not None and now - last_new > SETTLE_SECONDS and settled_at != count:
            settled_at = count
            pending -= await settle(pending - watcher.routed.keys())
            continue
        if published and now - last_new > STALL_SECONDS:
            break
        if say and now - last_report >= 10:
            say(f"  routed {routed}/{len(pending)}")
            last_report = now
    if publishing is not None:
        await publishing


def _by_case(events: list[ChannelEvent]) -> dict[str, ChannelEvent]:
    from shared.events import case_id_for

    return {case_id_for(event.channel, event.event_id): event for event in events}


async def run_through_pipeline(kafka: str, events: list[ChannelEvent], *, rate: float | None = None,
                               timeout: float, say: Say | None = None, store: StoreCheck | None = None,
                               at_start: Callable[[], None] | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """Publish the events (as fast as possible, or paced at `rate`) and wait until they are routed: when each
    was published and when each was routed, wall-clock milliseconds by case id."""
    from tools.demo import RoutedWatcher, publish_events

    by_case = _by_case(events)
    awaited = set(by_case)

    async def merged(missing: set[str]) -> set[str]:
        if store is None:
            return set()
        looked_up = [by_case[case_id] for case_id in sorted(missing)]
        outcomes = await store.outcomes(looked_up)
        return {case_id for case_id, outcome in zip(sorted(missing), outcomes, strict=True) if outcome == "merged"}

    async with RoutedWatcher(kafka) as watcher:
        if at_start:
            at_start()
        if rate is None:  # nothing else in this process competes with the publishing
            sent_at = await publish_events(kafka, events)
            await await_routed(watcher, awaited, publishing=None, timeout=timeout, say=say, settle=merged)
        else:  # paced: read along, so a long run shows its progress
            publishing = asyncio.create_task(publish_events(kafka, events, rate))
            await await_routed(watcher, awaited, publishing=publishing, timeout=timeout, say=say, settle=merged)
            sent_at = publishing.result()
    arrived = {case_id: at for case_id, (at, _event) in watcher.routed.items() if case_id in awaited}
    return sent_at, arrived


