"""`triage demo`: publish realistic complaints through the running pipeline and watch them get routed."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient

from shared import topics
from shared.adapters.mongo import MongoStorage
from shared.config import bootstrap_servers
from shared.events import CaseRouted, ChannelEvent, Complainant, case_id_for
from tools import paths

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_PLACES = ("江海路", "临江大道", "秀山路", "长江路", "为民村", "新江村", "东灶港", "包场镇", "正余社区", "滨江花园")


@dataclass(frozen=True)
class Sample:
    text: str
    channel: str


def load_samples(corpus_dir: Path = paths.CORPUS_DIR) -> list[Sample]:
    samples = []
    for path in sorted(corpus_dir.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                samples.append(Sample(row["text"], row["channel"]))
    if not samples:
        raise FileNotFoundError(f"no complaint samples in {corpus_dir}")
    return samples


def make_events(n: int, samples: list[Sample], run_id: str, rng: random.Random) -> list[ChannelEvent]:
    """N complaints from the corpus, each told from a different address, and once the corpus is used up two
    complaints in one call (callers often raise several matters): no event is a copy of another, so none
    is taken for a repeat report of an earlier run's case."""
    events = []
    order = rng.sample(samples, len(samples))
    for i in range(n):
        sample = order[i % len(order)]
        if i >= len(order):
            other = rng.choice(samples)
            sample = Sample(f"{sample.text}另外还有个事，{other.text}", sample.channel)
        complainant = None
        if rng.random() < 0.7:
            complainant = Complainant(
                name=f"{rng.choice(_SURNAMES)}{rng.choice(['先生', '女士'])}",
                phone=f"1{rng.choice('3589')}{rng.randrange(10**9):09d}",
            )
        location = f"{rng.choice(_PLACES)}{rng.randrange(1, 400)}号{i + 1}室"  # the index keeps every text unique
        events.append(ChannelEvent(
            event_id=f"demo-{run_id}-{i:06d}",
            channel=sample.channel,  # type: ignore[arg-type]
            occurred_at=datetime.now(UTC),
            text=f"{sample.text}（地址：{location}）",
            location=location,
            complainant=complainant,
        ))
    return events


@dataclass
class DemoResult:
    published: int
    routed: int
    by_unit: dict[str, int]
    dead_lettered: int
    lost: int
    p50_ms: float
    p99_ms: float
    wall_s: float
    examples: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"published": self.published, "routed": self.routed, "by_unit": self.by_unit,
                "dead_lettered": self.dead_lettered, "lost": self.lost,
                "p50_ms": self.p50_ms, "p99_ms": self.p99_ms, "wall_s": self.wall_s}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


async def publish_events(kafka: str, events: list[ChannelEvent], rate: float | None = None) -> dict[str, float]:
    """Publish (at `rate` per second, or as fast as the broker takes them) and return when each case's
    event went out, wall-clock milliseconds by case id."""
    sent_at: dict[str, float] = {}
    async with KafkaBroker(bootstrap_servers(kafka), client_id="triage-demo", acks="all") as broker:
        await broker.start()
        pending = []
        started = time.monotonic()
        for i, event in enumerate(events):
            if rate:
                await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            sent_at[case_id_for(event.channel, event.event_id)] = time.time() * 1000
            pending.append(await broker.publish(event.model_dump(mode="json"), topics.CHANNEL_EVENTS,
                                                key=event.event_id.encode(), no_confirm=True))
        await asyncio.gather(*pending)  # every record acknowledged by the broker
    return sent_at


class RoutedWatcher:
    """Reads the routed-case topic and notes when each awaited case came through (broker timestamps)."""

    def __init__(self, kafka: str) -> None:
        self.consumer = AIOKafkaConsumer(topics.CASE_ROUTED, bootstrap_servers=kafka, group_id=None,
                                         auto_offset_reset="earliest")
        self.routed: dict[str, tuple[float, CaseRouted]] = {}

    async def __aenter__(self) -> RoutedWatcher:
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def wait_for(self, awaited: set[str], timeout: float, progress: bool = False) -> None:
        deadline = time.monotonic() + timeout
        last_report = time.monotonic()
        while not awaited <= self.routed.keys() and time.monotonic() < deadline:
            batch = await self.consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batch.values():
                for record in records:
                    if record.key and record.key.decode() in awaited and record.value is not None:
                        event = CaseRouted.model_validate_json(record.value)
                        if event.payload.routing_attempt == 0:
                            self.routed.setdefault(event.case_id, (float(record.timestamp), event))
            if progress and time.monotonic() - last_report > 2:
                print(f"  routed {len(awaited & self.routed.keys())}/{len(awaited)}", flush=True)
                last_report = time.monotonic()


async def count_in_store(mongodb: str, database: str, case_ids: list[str], since: datetime) -> tuple[int, int]:
    """How many of the cases were routed (first attempt) in the store, and how many events were dead-lettered."""
    storage = MongoStorage(AsyncMongoClient(mongodb, tz_aware=True), database)
    try:
        cases = [await storage.cases.get(case_id) for case_id in case_ids]
        stored = sum(1 for case in cases if case is not None and "0" in case.routings)
        dead = await storage.db["dead_letters"].count_documents({"at": {"$gte": since}})
    finally:
        await storage.close()
    return stored, dead


async def run_demo(
    cases: int, kafka: str, mongodb: str, database: str, *, timeout: float = 900, progress: bool = True,
    seed: int | None = None, rate: float | None = None,
) -> DemoResult:
    rng = random.Random(seed)
    events = make_events(cases, load_samples(), uuid.uuid4().hex[:8], rng)
    texts = {case_id_for(e.channel, e.event_id): e.text for e in events}
    since = datetime.now(UTC)
    async with RoutedWatcher(kafka) as watcher:
        started = time.monotonic()
        if progress:
            print(f"publishing {cases} complaints to {topics.CHANNEL_EVENTS} ...", flush=True)
        sent_at = await publish_events(kafka, events, rate)
        await watcher.wait_for(set(sent_at), timeout, progress)
        wall = time.monotonic() - started
    seen = {cid: hit for cid, hit in watcher.routed.items() if cid in sent_at}
    routed, dead = await count_in_store(mongodb, database, list(sent_at), since)
    latencies = [at - sent_at[cid] for cid, (at, _) in seen.items()]
    by_unit = Counter(event.payload.unit.value for _, event in seen.values())
    examples = [
        {"case_id": cid, "unit": e.payload.unit.value, "category": e.payload.category.value,
         "urgency": e.payload.urgency.value, "text": texts[cid][:40]}
        for cid, (_, e) in list(seen.items())[:8]
    ]
    return DemoResult(
        published=cases, routed=routed, by_unit=dict(sorted(by_unit.items())), dead_lettered=dead,
        lost=cases - routed - dead, p50_ms=percentile(latencies, 0.50), p99_ms=percentile(latencies, 0.99),
        wall_s=round(wall, 2), examples=examples,
    )
