"""`triage bench-queue`: what a desk's queue page costs on the store, and what each case save now pays to keep
the queue. It seeds a fresh database with cases shaped as the adapter writes them, files the open ones in the
desk queue's shards, and times reads and writes. It prints figures and never judges them."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import bson
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from shared.adapters.mongo.documents import Document, case_document
from shared.adapters.mongo.queue import SHARDS, MongoDeskQueue, entry_document, shard_id, shard_of
from shared.adapters.mongo.shardlog import field_key
from shared.domain.case import Case
from shared.domain.change import OpenDeadline
from shared.domain.lifecycle import OPEN_STATUSES, CaseStatus
from shared.domain.queue import QueueEntry, QueueFilter, entry_of, queue_page
from shared.domain.triage import Category, Unit, Urgency

# A new database each run, dropped at the end: FerretDB (SQLite) was seen to report its file "malformed" when a
# database was dropped and at once created again under the same name.
DATABASE = "triage_bench_queue"
CHANNELS = ("12345", "wechat", "walk_in", "phone", "app")
WORKING = sorted(OPEN_STATUSES - {CaseStatus.RECEIVED, CaseStatus.CLASSIFIED}, key=list(CaseStatus).index)
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Plan:
    cases: int
    open: int
    unit: Unit
    runs: int


def build_case(n: int, unit: Unit | None, status: CaseStatus, rng: random.Random) -> Case:
    received = T0 - timedelta(minutes=rng.randrange(60 * 24 * 60))
    due = (received + timedelta(days=rng.randrange(-5, 40))).date().isoformat()
    deadlines = {"unit_resolve": OpenDeadline(rule="unit.resolve", start=received.date().isoformat(), due=due,
                                              source="bench", opened_at=received)} if unit else {}
    return Case(id=f"GT-BENCH-{n:06d}", channel=rng.choice(CHANNELS), received_at=received, status=status,
                unit=unit, version=rng.randrange(1, 8), urgency=rng.choice(list(Urgency)),
                category=rng.choice(list(Category)), needs_review=rng.random() < 0.1, overdue=rng.random() < 0.05,
                external_ref=f"EXT-{n:06d}" if rng.random() < 0.5 else None, deadlines=deadlines,
                text=f"第 {n} 号案件：楼上邻居每晚噪音扰民，多次协商无果，请求调解处理。" * 3)


def seed_cases(plan: Plan, rng: random.Random) -> list[Case]:
    """`plan.open` open cases of the measured unit, as many closed ones, the rest over the other units in any
    status (a fifth not routed yet)."""
    others = [u for u in Unit if u is not plan.unit]
    cases: list[Case] = []
    for n in range(plan.cases):
        if n < plan.open:
            cases.append(build_case(n, plan.unit, rng.choice(WORKING), rng))
        elif n < 2 * plan.open:
            cases.append(build_case(n, plan.unit, CaseStatus.CLOSED, rng))
        elif rng.random() < 0.2:
            cases.append(build_case(n, None, rng.choice([CaseStatus.RECEIVED, CaseStatus.CLASSIFIED]), rng))
        else:
            cases.append(build_case(n, rng.choice(others), rng.choice([*WORKING, CaseStatus.CLOSED]), rng))
    return cases


def shard_documents(entries: Sequence[QueueEntry]) -> list[Document]:
    """The queue's shards as snapshots of the state before their first logged revision (for seeding only: one
    insert per shard instead of one logged revision per entry)."""
    shards: dict[str, Document] = defaultdict(dict)
    for e in entries:
        shards[shard_id(e.unit, shard_of(e.case_id))][field_key(e.case_id)] = entry_document(e)
    return [{"_id": sid, "rev": 1, "cases": cases} for sid, cases in shards.items()]


async def seed(db: AsyncDatabase[Document], plan: Plan) -> list[QueueEntry]:
    cases = seed_cases(plan, random.Random(7))
    for start in range(0, len(cases), 2000):
        await db["cases"].insert_many([case_document(c, []) for c in cases[start:start + 2000]], ordered=False)
    entries = [e for e in map(entry_of, cases) if e is not None]
    await db["desk_queue"].insert_many(shard_documents(entries), ordered=False)
    return [e for e in entries if e.unit is plan.unit]


async def timed(operation: Awaitable[object]) -> float:
    started = time.perf_counter()
    await operation
    return (time.perf_counter() - started) * 1000


def spread(name: str, ms: Sequence[float]) -> str:
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"  {name:<44} p50 {statistics.median(ordered):8.2f} ms   p95 {p95:8.2f} ms   (n={len(ordered)})"


async def measure(queue: MongoDeskQueue, unit: Unit, filed: Sequence[QueueEntry], runs: int) -> list[str]:
    read_ms: list[float] = []
    page_ms: list[float] = []
    filtered_ms: list[float] = []
    total_ms: list[float] = []
    put_ms: list[float] = []
    counts: tuple[int, int] = (0, 0)
    for _ in range(runs):
        started = time.perf_counter()
        entries = await queue.entries(unit)
        read_ms.append((time.perf_counter() - started) * 1000)
        t = time.perf_counter()
        first = queue_page(entries, QueueFilter(), 1, 50)
        page_ms.append((time.perf_counter() - t) * 1000)
        total_ms.append((time.perf_counter() - started) * 1000)
        t = time.perf_counter()
        third = queue_page(entries, QueueFilter(channel="wechat"), 3, 50)
        filtered_ms.append((time.perf_counter() - t) * 1000)
        counts = (first.total, third.total)
    rng = random.Random(11)
    for e in rng.sample(list(filed), min(runs, len(filed))):
        put_ms.append(await timed(queue.put(replace(e, version=e.version + 1))))
    noop_ms = [await timed(queue.put(e)) for e in rng.sample(list(filed), min(runs, len(filed)))]
    return [
        f"queue of {unit.value}: {len(entries)} entries read; default filter {counts[0]}, channel=wechat {counts[1]}",
        spread("entries(unit), first read: 32 snapshots", read_ms[:1]),
        spread("entries(unit), then: a log lookup a shard", read_ms[1:]),
        spread("queue_page default filter, page 1 of 50", page_ms),
        spread("queue_page channel=wechat, page 3 of 50", filtered_ms),
        spread("total: entries + default page", total_ms),
        spread("put (a newer version: one logged revision)", put_ms),
        spread("put (filed already: a replay, reads only)", noop_ms),
    ]


async def measure_pages(uri: str, database: str, unit: Unit, runs: int) -> list[str]:
    """The desk app itself, in this process over the same store: the queue page a signed-in officer opens (and
    polls every few seconds), and the JSON API's first page. In-process, so the time is the server's."""
    import re

    import httpx

    from services.desk_api.main import create_app
    from shared.config import Settings
    from shared.events import DeskAction

    async def publish(event: DeskAction) -> None:
        raise AssertionError("the benchmark submits no action")

    token = f"bench-{unit.value}-{uuid.uuid4().hex}"
    settings = Settings(dev_mode=True, mongodb_uri=uri, mongodb_database=database, desk_tokens={token: unit})
    app = create_app(settings, publish=publish)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        form = await client.get("/desk/signin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None
        await client.post("/desk/signin", data={"csrf": csrf.group(1), "token": token, "officer": "bench"})
        page_ms, api_ms = [], []
        for _ in range(runs):
            started = time.perf_counter()
            page = await client.get("/desk/")
            page_ms.append((time.perf_counter() - started) * 1000)
            assert page.status_code == 200 and "共 " in page.text, page.status_code
            api_ms.append(await timed(client.get(f"/desks/{unit.value}/cases?limit=50",
                                                 headers={"Authorization": f"Bearer {token}"})))
    return [spread("queue page /desk/ (first: cold)", page_ms[:1]),
            spread("queue page /desk/ (then, as it is polled)", page_ms[1:]),
            spread("JSON API GET /desks/<unit>/cases", api_ms)]


async def shard_sizes(db: AsyncDatabase[Document], unit: Unit) -> str:
    docs = await asyncio.gather(*(db["desk_queue"].find_one({"_id": shard_id(unit, s)}) for s in range(SHARDS)))
    sizes = sorted(len(bson.encode(d)) for d in docs if d)
    entries = sorted(len(d["cases"]) for d in docs if d)
    return (f"shard documents of {unit.value}: {len(sizes)}; bytes min {sizes[0]:,} median "
            f"{int(statistics.median(sizes)):,} max {sizes[-1]:,} total {sum(sizes):,}; entries per shard min "
            f"{entries[0]} median {int(statistics.median(entries))} max {entries[-1]}")


async def run_queue_bench(uri: str, plan: Plan, progress: Callable[[str], None] = print) -> list[str]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri, tz_aware=True, maxPoolSize=16)
    database = f"{DATABASE}_{uuid.uuid4().hex[:8]}"
    try:
        db = client[database]
        progress(f"seeding {plan.cases:,} cases ({plan.open:,} open in {plan.unit.value}) into {database}")
        started = time.perf_counter()
        filed = await seed(db, plan)
        progress(f"seeded in {time.perf_counter() - started:.1f} s; measuring {plan.runs} runs")
        queue = MongoDeskQueue(db["desk_queue"], db["desk_queue_log"])
        lines = await measure(queue, plan.unit, filed, plan.runs)
        lines.append(await shard_sizes(db, plan.unit))
        lines += await measure_pages(uri, database, plan.unit, plan.runs)
        return lines
    finally:
        await client.drop_database(database)
        await client.close()
