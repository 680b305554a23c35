"""Two feed instances on the real broker, store and services: while complaints stream in and desks act, one
instance is stopped (SIGTERM) and started again, the other killed (SIGKILL) and started again. Every milestone
of the streamed cases reaches the feed exactly once (read_committed), and the feed does not stall."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.feed.relay import TRIGGERS
from shared import topics
from tests.conftest import TEST_STATE, eventually
from tests.e2e.test_lifecycle import Db, act
from tests.reliability.scenarios import Scenario, Stream
from tools import infra
from tools.processes import Fleet

pytestmark = [pytest.mark.e2e]


async def partition_counts(kafka: str, names: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(names)}
    finally:
        await admin.close()


async def read_feed(kafka: str, count: int) -> list[dict[str, Any]]:
    """The whole feed, committed records only, from its beginning to its end now."""
    reader = AIOKafkaConsumer(bootstrap_servers=kafka, isolation_level="read_committed",
                              enable_auto_commit=False, auto_offset_reset="earliest")
    await reader.start()
    try:
        partitions = [TopicPartition(topics.CASE_UPDATES, p) for p in range(count)]
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        ends = await reader.end_offsets(partitions)
        found: list[dict[str, Any]] = []
        while [tp for tp in partitions if await reader.position(tp) < ends[tp]]:
            for records in (await reader.getmany(timeout_ms=1000)).values():
                found.extend(json.loads(r.value or b"{}") for r in records)
        return found
    finally:
        await reader.stop()


async def test_two_feed_instances_stopped_and_killed_carry_each_milestone_once(
        fleet: Fleet, endpoints: infra.Endpoints, db: Db, desk_url: str) -> None:
    kafka = endpoints.kafka_bootstrap
    counts = await partition_counts(kafka, [*TRIGGERS, topics.CASE_UPDATES])
    assert counts == dict.fromkeys([*TRIGGERS, topics.CASE_UPDATES], 6), counts  # the broker's num.partitions
    first = fleet["feed"]
    twins = Fleet(first.env, TEST_STATE / "logs" / "feed-twin", {"feed": infra.free_port()})
    twin = twins["feed"]
    scenario = Scenario("feed_twins")
    stream = Stream(kafka, scenario, interval=0.2)
    accepted: list[str] = []
    started, streamed = time.monotonic(), 0.0
    twin.start()
    await asyncio.to_thread(twins.wait_healthy, 120)
    try:
        async with httpx.AsyncClient(base_url=desk_url, timeout=10) as desk:
            async def accept_one() -> None:  # desk actions: the feed's third trigger topic
                for case_id in scenario.published[len(accepted):]:
                    case = await db.cases.find_one({"_id": case_id, "status": "routed"}, {"unit": 1})
                    if case is not None:
                        await act(desk, db, case["unit"], case_id, "accept")
                        accepted.append(case_id)
                        return

            stream.start()
            await asyncio.sleep(4)  # both instances relay their groups
            await accept_one()
            await asyncio.to_thread(twin.stop)  # SIGTERM: its groups go over to the first
            await asyncio.sleep(3)
            await accept_one()
            twin.start()
            await asyncio.to_thread(twins.wait_healthy, 120)
            await asyncio.sleep(3)  # the groups shared again
            first.stop(kill=True)  # SIGKILL mid-stream: the twin fences it when its groups come over
            await accept_one()
            await asyncio.sleep(12)  # past the session timeout: the twin holds every group
            await accept_one()
            first.start()
            await asyncio.to_thread(fleet.wait_healthy, 120, ["feed"])
            await asyncio.sleep(3)
            await accept_one()
        await stream.stop()
        streamed = time.monotonic()
        published = set(scenario.published)

        async def complete() -> list[dict[str, Any]] | None:
            found = [u for u in await read_feed(kafka, counts[topics.CASE_UPDATES]) if u.get("case_id") in published]
            kinds = Counter((u["case_id"], u["payload"]["milestone"]) for u in found)
            want = {(c, m) for c in published for m in ("received", "routed")} | {(c, "accepted") for c in accepted}
            return found if want <= set(kinds) else None

        found = await eventually(complete, 120, "every milestone of the streamed cases on the feed")
        caught_up = time.monotonic() - streamed
    finally:
        if not streamed:
            await stream.stop()
        await asyncio.to_thread(twin.stop)
    await asyncio.sleep(3)  # a duplicate committed late would show
    found = [u for u in await read_feed(kafka, counts[topics.CASE_UPDATES]) if u.get("case_id") in published]
    ids = Counter(u["event_id"] for u in found)
    twice = [event_id for event_id, n in ids.items() if n > 1]
    print(f"\n  feed twins: {len(published)} cases, {len(accepted)} accepted, {len(found)} milestones carried, "
          f"{len(twice)} twice; caught up {caught_up:.1f} s after the stream, {time.monotonic() - started:.0f} s")
    assert twice == [], twice
    assert len(accepted) >= 3 and len(published) >= 50
    kinds = Counter((u["case_id"], u["payload"]["milestone"]) for u in found)
    assert all(kinds[(c, m)] == 1 for c in published for m in ("received", "routed"))
    assert all(kinds[(c, "accepted")] == 1 for c in accepted)
    assert caught_up < 60, f"the feed took {caught_up:.0f} s to carry what was streamed"

