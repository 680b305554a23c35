"""`triage bench-figures`: what the supervisors' page costs over a year of figures. It files the facts of N
cases spread over the 12 months up to now (each case routed, most accepted, resolved and visited, some handed
back, escalated, late or merged, mediation's with agreements) into a fresh database, as snapshots of the
figures' shards, then times the page the app serves (in-process, so the time is the server's), the report and a
save's write. It prints figures and never judges them."""

from __future__ import annotations

import random
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
from pymongo import AsyncMongoClient

from services.desk_api.main import create_app
from shared.adapters.mongo.documents import Document
from shared.adapters.mongo.figures import MongoFigures, fact_document, shard_of
from shared.adapters.mongo.shardlog import field_key
from shared.config import Settings
from shared.domain.facts import Fact, FactKind
from shared.domain.lifecycle import Satisfaction
from shared.domain.triage import Category, Unit
from shared.domain.workdays import local_date
from shared.events import Channel, DeskAction
from tools.bench.queue import spread, timed

DATABASE = "triage_bench_figures"
K = FactKind


def case_facts(n: int, today: date, rng: random.Random, days: int = 365) -> list[Fact]:
    """One case's facts, as the timeline of a case worked in a district would leave them; routed within the
    last `days` days."""
    case_id, routed = f"GT-FIG-{n:06d}", today - timedelta(days=rng.randrange(days))
    unit, category, channel = rng.choice(list(Unit)), rng.choice(list(Category)), rng.choice(list(Channel)).value
    found: list[Fact] = []

    def fact(kind: FactKind, day: date, cohort: date | None = None, who: Unit | None = None, episode: str = "0",
             **values: object) -> None:
        found.append(Fact(id=f"{case_id}/{kind.value}:{len(found)}", kind=kind, case_id=case_id, episode=episode,
                          unit=who or unit, day=day, cohort=cohort or routed, category=category, channel=channel,
                          **values))  # type: ignore[arg-type]

    fact(K.RECEIVED, routed)
    fact(K.ROUTED, routed)
    for r in range(rng.choices((0, 1, 2), (85, 12, 3))[0]):
        fact(K.REPEAT, min(today, routed + timedelta(days=r + 1)), routed + timedelta(days=r + 1))
    if rng.random() < 0.05:  # handed back, and routed to the command centre
        fact(K.HANDED_BACK, routed)
        unit = Unit.COMMAND
        fact(K.ROUTED, routed, episode="1")
    if rng.random() < 0.92:
        fact(K.ACCEPTED, routed + timedelta(days=rng.choice((0, 0, 1, 3))), flag=rng.random() < 0.9)
    if rng.random() < 0.04:
        fact(K.OVERDUE, min(today, routed + timedelta(days=20)), min(today, routed + timedelta(days=20)))
    if rng.random() < 0.03:
        fact(K.ESCALATED, min(today, routed + timedelta(days=25)), min(today, routed + timedelta(days=25)))
        return found
    done = routed + timedelta(days=rng.randrange(1, 30))
    if done > today or rng.random() < 0.08:
        return found  # still open
    if unit is Unit.MEDIATION and rng.random() < 0.6:
        fact(K.AGREEMENT, done, amount=Decimal(rng.randrange(0, 50_000)))
    fact(K.RESOLVED, done, flag=rng.random() < 0.93)
    if unit is Unit.MEDIATION:
        fact(K.MEDIATION, done, flag=any(f.kind is K.AGREEMENT for f in found))
    satisfaction = rng.choices(list(Satisfaction), (70, 20, 10))[0]
    fact(K.VISITED, done, satisfaction=satisfaction, flag=satisfaction is not Satisfaction.DISSATISFIED)
    fact(K.CLOSED if satisfaction is not Satisfaction.DISSATISFIED else K.REOPENED, done)
    return found


async def seed(figures: MongoFigures, cases: int, today: date, rng: random.Random) -> int:
    """Every shard as one snapshot document: what a store holds after its writers have snapshotted."""
    shards: dict[str, dict[str, str]] = defaultdict(dict)
    facts = 0
    for n in range(cases):
        for f in case_facts(n, today, rng):
            shards[shard_of(f)][field_key(f.id)] = fact_document(f)
            facts += 1
    documents: list[Document] = [{"_id": shard, "rev": 0, "cases": state} for shard, state in shards.items()]
    for start in range(0, len(documents), 20):
        await figures.book.shards.insert_many(documents[start:start + 20])
    return facts


async def measure_pages(settings: Settings, runs: int) -> list[str]:
    async def publish(event: DeskAction) -> None:
        raise AssertionError("the benchmark submits no action")

    token = f"bench-supervisor-{uuid.uuid4().hex}"
    app = create_app(settings.model_copy(update={"supervisor_tokens": [token]}), publish=publish)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench",
                                 timeout=120) as client:
        form = await client.get("/supervisor/signin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None
        await client.post("/supervisor/signin", data={"csrf": csrf.group(1), "token": token, "officer": "bench"})
        page_ms, month_ms, report_ms = [], [], []
        for _ in range(runs):
            started = time.perf_counter()
            page = await client.get("/supervisor/")
            page_ms.append((time.perf_counter() - started) * 1000)
            assert page.status_code == 200 and "各单位指标" in page.text, page.status_code
            month_ms.append(await timed(client.get("/supervisor/?grain=month")))
            report_ms.append(await timed(client.get("/supervisor/report?format=md")))
    return [spread("dashboard /supervisor/ (first: cold)", page_ms[:1]),
            spread("dashboard /supervisor/ (then, as it is polled)", page_ms[1:]),
            spread("dashboard, trend by month", month_ms),
            spread("monthly report (Markdown)", report_ms)]


async def run_figures_bench(uri: str, cases: int, runs: int, progress: Callable[[str], None] = print) -> list[str]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri, tz_aware=True, maxPoolSize=16)
    database = f"{DATABASE}_{uuid.uuid4().hex[:8]}"
    today = local_date(datetime.now(UTC))
    try:
        db = client[database]
        figures = MongoFigures(db["figures"], db["figures_log"])
        progress(f"seeding the facts of {cases:,} cases over the 12 months to {today} into {database}")
        started = time.perf_counter()
        facts = await seed(figures, cases, today, random.Random(7))
        shards = await db["figures"].count_documents({})
        progress(f"seeded {facts:,} facts in {shards} shards in {time.perf_counter() - started:.1f} s; "
                 f"measuring {runs} runs")
        rng = random.Random(9)
        month = today.strftime("%Y-%m")
        for unit in [*Unit, None]:  # a writer holds the shards it writes to: read this month's once
            await figures.tally(unit, month)
        writes = [await timed(figures.add(case_facts(cases + n, today, rng, days=1))) for n in range(runs)]
        # every read looks for new facts of the recent months, as a page polled every 15 s does; older months
        # are looked at every `figures_settled_seconds` (the default)
        settings = Settings(dev_mode=True, mongodb_uri=uri, mongodb_database=database, figures_fresh_seconds=0)
        lines = [f"facts: {facts:,} of {cases:,} cases in {shards} shard snapshots",
                 spread("a case's facts filed (this month's shards held)", writes)]
        lines += await measure_pages(settings, runs)
        return lines
    finally:
        await client.drop_database(database)
        await client.close()
