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
from shared.events import ChannelEvent, Complainant

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
    """N complaints from the corpus, each a different text: once the corpus is used up, two complaints are
    told in one call (callers often raise several matters), so no event is a copy of another."""
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
    merged: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"published": self.published, "routed": self.routed, "merged": self.merged, "by_unit": self.by_unit,
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
            sent_at[f"{event.channel.value}:{event.event_id}"] = time.time() * 1000
            pending.append(await broker.publish(event.model_dump(mode="json"), topics.CHANNEL_EVENTS,
                                                key=event.event_id.encode(), no_confirm=True))
        await asyncio.gather(*pending)  # every record acknowledged by the broker
    return sent_at


async def wait_routed(
    mongodb: str, database: str, sent: dict[str, float], timeout: float, progress: bool, since: datetime,
) -> tuple[dict[str, Delivery], int]:
    """Wait until every published report reached a desk: its own case routed, or merged into a routed case."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb, tz_aware=True)
    db = client[database]
    delivered: dict[str, Delivery] = {}
    deadline = time.monotonic() + timeout
    last_report = 0.0
    try:
        while len(delivered) < len(sent) and time.monotonic() < deadline:
            missing = [r for r in sent if r not in delivered]
            for start in range(0, len(missing), 500):
                receipts = {d["_id"]: d async for d in db.receipts.find({"_id": {"$in": missing[start:start + 500]}})}
                case_of = {r: str(d["case_id"]) for r, d in receipts.items()}
                routings = {d["case_id"]: d async for d in db.routings.find(
                    {"case_id": {"$in": sorted(set(case_of.values()))}, "attempt": 0})}
                for receipt, case_id in case_of.items():
                    if case_id in routings:
                        own = case_id == receipts[receipt].get("own_case_id", case_id)
                        done = routings[case_id]["at"] if own else receipts[receipt]["at"]
                        delivered[receipt] = Delivery(case_id, routings[case_id], max(done, receipts[receipt]["at"]),
                                                      merged=not own)
            if progress and time.monotonic() - last_report > 2:
                print(f"  routed {len(delivered)}/{len(sent)}", flush=True)
                last_report = time.monotonic()
            if len(delivered) < len(sent):
                await asyncio.sleep(0.25)
        dead = await db.dead_letters.count_documents({"at": {"$gte": since}})
    finally:
        await client.close()
    return delivered, dead


@dataclass(frozen=True)
class Delivery:
    case_id: str
    routing: dict[str, Any]
    at: datetime
    merged: bool


async def run_demo(
    cases: int, kafka: str, mongodb: str, database: str, *, timeout: float = 600, progress: bool = True,
    seed: int | None = None,
) -> DemoResult:
    rng = random.Random(seed)
    run_id = uuid.uuid4().hex[:8]
    events = make_events(cases, load_samples(), run_id, rng)
    texts = {f"{e.channel.value}:{e.event_id}": e.text for e in events}
    started = time.monotonic()
    since = datetime.now(UTC)
    if progress:
        print(f"publishing {cases} complaints to {topics.CHANNEL_EVENTS} ...", flush=True)
    sent_at = await publish_events(kafka, events)
    routed, dead = await wait_routed(mongodb, database, sent_at, timeout, progress, since)
    wall = time.monotonic() - started
    latencies = [d.at.timestamp() * 1000 - sent_at[r] for r, d in routed.items()]
    by_unit = Counter(str(d.routing["unit"]) for d in routed.values())
    examples = [
        {"case_id": d.case_id, "unit": d.routing["unit"], "category": d.routing.get("category"),
         "urgency": d.routing["decision"]["urgency"], "text": texts[r][:40]}
        for r, d in list(routed.items())[:8]
    ]
    return DemoResult(
        published=cases, routed=len(routed), by_unit=dict(sorted(by_unit.items())), dead_lettered=dead,
        lost=cases - len(routed), p50_ms=percentile(latencies, 0.50), p99_ms=percentile(latencies, 0.99),
        wall_s=round(wall, 2), merged=sum(d.merged for d in routed.values()), examples=examples,
    )
