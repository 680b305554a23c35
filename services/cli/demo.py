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

from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient

from shared import topics
from shared.events import ChannelEvent, Complainant, case_id_for

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS_DIR = REPO_ROOT / "data" / "corpus"
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"


@dataclass(frozen=True)
class Sample:
    text: str
    channel: str


def load_samples(corpus_dir: Path = CORPUS_DIR) -> list[Sample]:
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
    events = []
    for i in range(n):
        sample = rng.choice(samples)
        complainant = None
        if rng.random() < 0.7:
            complainant = Complainant(
                name=f"{rng.choice(_SURNAMES)}{rng.choice('先生女士')}",
                phone=f"1{rng.choice('3589')}{rng.randrange(10**9):09d}",
            )
        events.append(ChannelEvent(
            event_id=f"demo-{run_id}-{i:06d}",
            channel=sample.channel,  # type: ignore[arg-type]
            occurred_at=datetime.now(UTC),
            text=sample.text,
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


async def publish_events(kafka: str, events: list[ChannelEvent]) -> dict[str, float]:
    """Publish and return when each case's first event went out (monotonic-free: wall clock, ms)."""
    sent_at: dict[str, float] = {}
    async with KafkaBroker(kafka, client_id="triage-demo", acks="all") as broker:
        await broker.start()
        pending = []
        for event in events:
            sent_at[case_id_for(event.channel, event.event_id)] = time.time() * 1000
            pending.append(await broker.publish(event.model_dump(mode="json"), topics.CHANNEL_EVENTS,
                                                key=event.event_id.encode(), no_confirm=True))
        await asyncio.gather(*pending)  # every record acknowledged by the broker
    return sent_at


async def wait_routed(
    mongodb: str, database: str, sent_at: dict[str, float], timeout: float, progress: bool,
    since: datetime,
) -> tuple[dict[str, dict[str, Any]], int]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb, tz_aware=True)
    db = client[database]
    ids = list(sent_at)
    routed: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    last_report = 0.0
    try:
        while len(routed) < len(ids) and time.monotonic() < deadline:
            missing = [i for i in ids if i not in routed]
            for start in range(0, len(missing), 500):
                chunk = missing[start:start + 500]
                async for doc in db.routings.find({"case_id": {"$in": chunk}, "attempt": 0}):
                    routed[doc["case_id"]] = doc
            if progress and time.monotonic() - last_report > 2:
                print(f"  routed {len(routed)}/{len(ids)}", flush=True)
                last_report = time.monotonic()
            if len(routed) < len(ids):
                await asyncio.sleep(0.25)
        dead = await db.dead_letters.count_documents({"at": {"$gte": since}})
    finally:
        await client.close()
    return routed, dead


async def run_demo(
    cases: int, kafka: str, mongodb: str, database: str, *, timeout: float = 600, progress: bool = True,
    seed: int | None = None,
) -> DemoResult:
    rng = random.Random(seed)
    run_id = uuid.uuid4().hex[:8]
    events = make_events(cases, load_samples(), run_id, rng)
    texts = {case_id_for(e.channel, e.event_id): e.text for e in events}
    started = time.monotonic()
    since = datetime.now(UTC)
    if progress:
        print(f"publishing {cases} complaints to {topics.CHANNEL_EVENTS} ...", flush=True)
    sent_at = await publish_events(kafka, events)
    routed, dead = await wait_routed(mongodb, database, sent_at, timeout, progress, since)
    wall = time.monotonic() - started
    latencies = [doc["at"].timestamp() * 1000 - sent_at[cid] for cid, doc in routed.items()]
    by_unit = Counter(str(doc["unit"]) for doc in routed.values())
    examples = [
        {"case_id": cid, "unit": doc["unit"], "category": doc.get("category"),
         "urgency": doc["decision"]["urgency"], "text": texts[cid][:40]}
        for cid, doc in list(routed.items())[:8]
    ]
    return DemoResult(
        published=cases, routed=len(routed), by_unit=dict(sorted(by_unit.items())), dead_lettered=dead,
        lost=cases - len(routed), p50_ms=percentile(latencies, 0.50), p99_ms=percentile(latencies, 0.99),
        wall_s=round(wall, 2), examples=examples,
    )
