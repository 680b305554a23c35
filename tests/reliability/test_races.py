"""Racing writers: two instances of every service on six partitions, and bursts aimed at the documents two
processes might write at once.

- Many repeat reports of one open case, from every channel at once, while the case is being classified and
  routed: the two intake instances each take some, and every one must be counted on that case, none
  opening a case of its own.
- Thousands of timers falling due on one day, fired by two follow-up instances: every timer filed is
  filed in the index (a lost filing is a missed escalation) and fires exactly once.

The scenario runs on a broker and a store of its own: the session's services would otherwise take in its
complaints too (every consumer group reads every topic), and moving its simulated clock moves no one else's.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from shared import topics
from shared.adapters.mongo import MongoStorage
from shared.adapters.mongo.documents import case_from_document
from shared.domain.deadlines import Deadline
from shared.domain.followup import TimerSpec, timers_of
from shared.events import Channel, case_id_for
from tests.conftest import TEST_STATE, channel_event
from tests.reliability.scenarios import RESULTS, Db, Scenario, database, infra_of_its_own, write_summary
from tools import infra
from tools.processes import PIPELINE, Fleet, service_env

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]
REPEATS = 70  # repeat reports of one case, ten from each channel
CASES = 1200  # cases whose timers fall due together


RACES_STATE = TEST_STATE / "races"


@pytest.fixture(scope="module")
def race_endpoints() -> Iterator[infra.Endpoints]:
    with infra_of_its_own(RACES_STATE) as found:
        yield found


@pytest.fixture(scope="module")
def race_database() -> str:
    return f"triage_races_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def twin_fleets(race_endpoints: infra.Endpoints, race_database: str, model_dir: Path) -> Iterator[list[Fleet]]:
    """Two instances of each pipeline service, in one consumer group per service, on their own database."""
    env = service_env(race_endpoints.kafka_bootstrap, race_endpoints.mongodb_uri, MONGODB_DATABASE=race_database,
                      MODEL_DIR=str(model_dir), CONSUMER_GROUP_PREFIX=f"races-{race_database}",
                      RETRY_MAX_SECONDS="1", SIMULATED_CLOCK="true", TIMER_SCAN_SECONDS="0.5",
                      MONGODB_MAX_CONNECTIONS="8", DEV_MODE="true")
    fleets: list[Fleet] = []
    taken: list[int] = []
    for twin in ("a", "b"):
        ports = []
        for _ in PIPELINE:
            ports.append(infra.free_port(exclude=taken))
            taken.append(ports[-1])
        fleets.append(Fleet(env, RACES_STATE / "logs" / twin, dict(zip(PIPELINE, ports, strict=True))))
    try:
        for fleet in fleets:
            fleet.start(timeout=120)
        yield fleets
    finally:
        for fleet in fleets:
            fleet.stop()


@pytest.fixture(scope="module")
async def race_db(race_endpoints: infra.Endpoints, race_database: str) -> AsyncIterator[Db]:
    async with database(race_endpoints.mongodb_uri, race_database) as db:
        yield db


async def publish_all(kafka: str, events: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = [await producer.send(topics.CHANNEL_EVENTS, json.dumps(e, ensure_ascii=False).encode(),
                                    key=e["event_id"].encode()) for e in events]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def wait_for(probe: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await probe():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s: {what}")
        await asyncio.sleep(1)


async def timer_entries(db: Db, case_ids: list[str]) -> dict[str, int]:
    """How often each timer's entry is on its case's timeline."""
    entries: dict[str, int] = {}
    for case_id in case_ids:
        doc = await db.cases.find_one({"_id": case_id}, {"timeline": 1})
        for e in (doc or {}).get("timeline", []):
            if e["id"].startswith("timer:"):
                entries[e["id"]] = entries.get(e["id"], 0) + 1
    return entries


async def test_repeats_of_one_case_from_every_channel_at_once(
    twin_fleets: list[Fleet], race_endpoints: infra.Endpoints, race_db: Db
) -> None:
    phone = f"139{uuid.uuid4().int % 10**8:08d}"
    text = f"小区地下车库积水一直没人处理，电瓶车泡在水里（{phone[-4:]}号车位）"
    first = channel_event(text, event_id=f"race-first-{uuid.uuid4().hex[:8]}", complainant={"phone": phone})
    await publish_all(race_endpoints.kafka_bootstrap, [first])
    case_id = case_id_for("12345", first["event_id"])

    async def received() -> bool:  # in the store, not yet classified: the repeats race its classification
        return await race_db.cases.find_one({"_id": case_id}, {"_id": 1}) is not None

    await wait_for(received, 120, f"case {case_id} received")
    channels = [c.value for c in Channel]
    repeats = [channel_event(text, channel=channels[n % len(channels)], event_id=f"race-rep-{uuid.uuid4().hex[:10]}",
                             complainant={"phone": phone}) for n in range(REPEATS)]
    burst = time.monotonic()
    await publish_all(race_endpoints.kafka_bootstrap, repeats)

    async def all_taken_in() -> bool:
        return await race_db.receipts.count_documents({"case_id": case_id}) >= REPEATS

    await wait_for(all_taken_in, 180, f"{REPEATS} repeats taken in")

    async def counted() -> bool:
        case = await race_db.cases.find_one({"_id": case_id}, {"repeat_count": 1})
        return bool((case or {}).get("repeat_count", 0) >= REPEATS)

    await wait_for(counted, 60, f"{REPEATS} repeats counted")
    await asyncio.sleep(3)  # anything late (a repeat counted twice, a case of its own) has landed by now
    case = await race_db.cases.find_one({"_id": case_id})
    assert case is not None
    merged = [e for e in case["timeline"] if e["kind"] == "merged"]
    own_cases = [r["event_id"] for r in repeats
                 if await race_db.cases.find_one({"_id": case_id_for(r["channel"], r["event_id"])}, {"_id": 1})]
    # In the summary: "published" the repeats sent, "routed" those counted on the case; "duplicated" a repeat
    # counted twice or opening a case of its own.
    scenario = Scenario("racing_repeats", published=[case_id] * REPEATS, routed=len(merged),
                        duplicated=max(0, case["repeat_count"] - REPEATS) + len(own_cases),
                        seconds=round(time.monotonic() - burst, 1))
    RESULTS.append(scenario)
    write_summary()
    print(f"\nracing repeats: {REPEATS} published, {len(merged)} merged, repeat_count {case['repeat_count']}, "
          f"{len(own_cases)} opened a case of their own")
    assert case["repeat_count"] == REPEATS
    assert len(merged) == REPEATS
    assert {e["detail"]["channel"] for e in merged} == set(channels)
    assert not own_cases


async def test_thousands_of_timers_due_on_one_day_fire_once(
    twin_fleets: list[Fleet], race_endpoints: infra.Endpoints, race_db: Db
) -> None:
    tag = uuid.uuid4().hex[:6]
    events = [channel_event(f"楼下烧烤店每晚油烟噪音扰民，第{n}户居民反映（批次{tag}）",
                            event_id=f"race-timer-{tag}-{n}") for n in range(CASES)]
    started = time.monotonic()
    await publish_all(race_endpoints.kafka_bootstrap, events)
    case_ids = [case_id_for("12345", e["event_id"]) for e in events]

    async def all_routed() -> bool:
        done = 0
        for case_id in case_ids:
            doc = await race_db.cases.find_one({"_id": case_id}, {"routings": 1})
            done += "0" in (doc or {}).get("routings", {})
        return done == len(case_ids)

    await wait_for(all_routed, 600, f"{CASES} cases routed")
    routed_in = time.monotonic() - started
    storage = MongoStorage(AsyncMongoClient(race_endpoints.mongodb_uri, tz_aware=True), race_db.name)
    try:
        expected: dict[str, TimerSpec] = {}
        for case_id in case_ids:
            doc = await race_db.cases.find_one({"_id": case_id}, {"timeline": 0})
            assert doc is not None
            case = case_from_document(doc)
            opened = [Deadline(d.rule, date.fromisoformat(d.start), date.fromisoformat(d.due), d.source)
                      for d in case.deadlines.values()]
            expected.update((t.id, t) for t in timers_of(case_id, opened))
        # The day most of them fall due on, and the moment its last one is due: the clock moves there.
        by_day: dict[str, list[TimerSpec]] = {}
        for timer in expected.values():
            by_day.setdefault(timer.due_at.date().isoformat(), []).append(timer)
        day, due = max(by_day.items(), key=lambda item: len(item[1]))
        first_day = min(by_day)
        due_now = [t for t in expected.values() if t.due_at.date().isoformat() <= day]
        moment = max(t.due_at for t in due) + timedelta(seconds=1)

        async def filed() -> set[str]:
            found: set[str] = set()
            for d in sorted({t.due_at.date().isoformat() for t in expected.values()}):
                found.update(t.id for t in await storage.timers.unfinished_on(d))
            return found

        # Timers due before the clock moves may have fired already: their entry on the timeline says so.
        missing = set(expected) - await filed() - {e.removeprefix("timer:") for e in await timer_entries(race_db, case_ids)}
        assert not missing, f"{len(missing)} of {len(expected)} timers were never filed, e.g. {sorted(missing)[:3]}"
        await storage.clock.set_offset_seconds((moment - datetime.now(UTC)).total_seconds())
        fired_started = time.monotonic()

        async def fired() -> bool:
            return not {t.id for t in due_now} & await filed()

        await wait_for(fired, 600, f"{len(due_now)} timers due by {day} fired")
        fired_in = time.monotonic() - fired_started
        await asyncio.sleep(2)
        entries = await timer_entries(race_db, case_ids)
    finally:
        await storage.close()
    timer_ids = {f"timer:{t.id}" for t in due_now}
    fired_once = sum(1 for t in timer_ids if entries.get(t) == 1)
    early = {e for e in entries if e not in timer_ids}
    # In the summary: "published" the timers due, "routed" those fired exactly once; "duplicated" one fired
    # twice or before it was due.
    scenario = Scenario("racing_timers", published=sorted(timer_ids), routed=fired_once,
                        duplicated=sum(n - 1 for n in entries.values() if n > 1) + len(early), seconds=round(fired_in, 1))
    RESULTS.append(scenario)
    write_summary()
    print(f"\nracing timers: {CASES} cases routed in {routed_in:.0f}s; {len(expected)} timers filed, "
          f"{len(due)} due on {day} (from {first_day}), {len(due_now)} due by then; "
          f"{fired_once} fired once in {fired_in:.0f}s, {len(early)} not yet due fired")
    assert not early
    assert fired_once == len(timer_ids), f"{len(timer_ids) - fired_once} timers did not fire exactly once"
