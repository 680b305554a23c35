"""`triage bench`, the whole run: the raw transport, the store-bound reference, the pipeline at its
maximum, then a steady load at half of it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tools.bench.figures import cpu_profile, latencies_ms, stage_profile, steady_plan, store_commands_per_case
from tools.bench.machine import Processes, machine_info
from tools.bench.pipeline import Say, StoreCheck, run_through_pipeline
from tools.bench.relay import StoreWork, measure_raw
from tools.bench.result import BenchResult, Phase

if TYPE_CHECKING:
    from shared.events import ChannelEvent
    from tools.processes import Fleet

IDLE_SECONDS = 5.0  # the processes' CPU with no events flowing, sampled before the pipeline is timed
WARMUP_CASES = 50  # routed before measuring: jieba's dictionary, the store's collections, the groups' joins


async def run_bench(
    cases: int, kafka: str, mongodb: str, database: str, fleet: Fleet | None = None, *, hops: int = 4,
    partitions: int = 6, sustain_s: float | None = None, raw_per_message: bool = False, progress: bool = True,
    seed: int | None = None,
) -> BenchResult:
    from tools.demo import load_samples, make_events, percentile

    say: Say | None = (lambda message: print(message, flush=True)) if progress else None
    machine = machine_info()
    rng = random.Random(seed)
    samples = load_samples()
    run = uuid.uuid4().hex[:6]
    processes = Processes.of(fleet)
    timeout = max(600.0, cases / 5)
    profile: dict[str, Any] = {}

    if say:
        say(f"(a) raw transport: {cases} events through {hops} relay hops over fresh {partitions}-partition topics")
    raw, profile["raw"] = await measure_raw(kafka, make_events(cases, samples, f"{run}a", rng), hops=hops,
                                            partitions=partitions, processes=processes, timeout=timeout)
    per_message = None
    if raw_per_message:
        if say:
            say("(a') raw transport again, one event at a time per hop")
        per_message, profile["raw_per_message"] = await measure_raw(
            kafka, make_events(cases, samples, f"{run}m", rng), hops=hops, partitions=partitions,
            per_message=True, processes=processes, timeout=timeout)
    if say:
        say(f"(a'') store-bound reference: {cases} cases through the {hops} hops, each doing its case's store work")
    store_bound, profile["store_bound"] = await measure_store_bound(
        kafka, mongodb, f"triage_bench_{run}", make_events(cases, samples, f"{run}s", rng), hops=hops,
        partitions=partitions, processes=processes, timeout=timeout)

    store = StoreCheck(mongodb, database)
    try:
        warmup = make_events(min(WARMUP_CASES, cases), samples, f"{run}w", rng)
        if say:
            say(f"warming the pipeline up with {len(warmup)} cases")
        await run_through_pipeline(kafka, warmup, timeout=timeout, store=store)
        await processes.wait_quiet()

        # What the processes burn with nothing to do (pollers, heartbeats, the follow-up's timer scan; other
        # sessions on a shared machine do not show here): the floor under the figures below.
        idle_before, idle_started = processes.cpu(), time.monotonic()
        await asyncio.sleep(IDLE_SECONDS)
        profile["idle"] = {"cpu": cpu_profile(idle_before, processes.cpu(), 0, time.monotonic() - idle_started)}

        since = datetime.now(UTC)
        if say:
            say(f"(b) pipeline: {cases} cases as fast as they can be published")
        events = make_events(cases, samples, f"{run}b", rng)
        snapshot: dict[str, Any] = {}

        def before_max() -> None:
            snapshot.update(cpu=processes.cpu(), metrics=processes.metrics())

        sent_at, arrived = await run_through_pipeline(kafka, events, timeout=timeout, say=say, store=store,
                                                      at_start=before_max)
        first_ms = min(sent_at.values())
        pipeline = Phase(cases, len(arrived), first_ms, max(arrived.values(), default=first_ms))
        # The follow-up consumes case-routed, after the measured stage: let it finish before the steady load,
        # or its backlog competes with it. How long that took is the throughput of every stage, and the CPU
        # and handler time up to then is what the cases cost, all four services' work included.
        if say:
            say("waiting for the follow-up to catch up")
        drained_ms = await processes.wait_quiet()
        drained = Phase(cases, len(arrived), first_ms, max(drained_ms, pipeline.last_ms))
        metrics_after = processes.metrics()
        profile["pipeline"] = {
            "all_stages_per_s": round(drained.per_s, 1),
            "cpu": cpu_profile(snapshot["cpu"], processes.cpu(), len(arrived), drained.wall_s),
            "stages": stage_profile(snapshot["metrics"], metrics_after, drained.wall_s),
        }
        store_commands = store_commands_per_case(snapshot["metrics"], metrics_after, len(arrived))

        rate, steady_cases = steady_plan(pipeline.per_s, cases, sustain_s)
        steady = make_events(steady_cases, samples, f"{run}c", rng)
        memory: dict[str, dict[str, float | None]] = {}

        def memory_at_start() -> None:
            for name, mb in processes.rss().items():
                memory[name] = {"start": mb, "end": None}

        if say:
            say(f"(c) steady load: {steady_cases} cases at {rate:.1f}/s, half the pipeline's maximum")
        steady_sent, steady_arrived = await run_through_pipeline(
            kafka, steady, rate=rate, timeout=timeout + steady_cases / max(rate, 1e-9), say=say,
            store=store, at_start=memory_at_start)
        for name, mb in processes.rss().items():
            memory.setdefault(name, {"start": None})["end"] = mb
        latencies = latencies_ms(steady_sent, steady_arrived)

        if say:
            say("counting the cases in the store")
        published = [*events, *steady]
        outcomes = await store.outcomes(published)
        routed, merged = outcomes.count("routed"), outcomes.count("merged")
        dead = await store.dead_letters_since(since)
    finally:
        await store.close()
    with contextlib.suppress(OSError):
        machine["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return BenchResult(
        cases=cases, hops=hops, raw=raw, raw_per_message=per_message, store_bound=store_bound, pipeline=pipeline,
        store_commands=store_commands,
        steady_rate=rate, steady_cases=steady_cases, steady_routed=len(steady_arrived),
        p50_ms=percentile(latencies, 0.50), p99_ms=percentile(latencies, 0.99),
        routed=routed, merged=merged, dead_lettered=dead, lost=max(0, len(published) - routed - merged - dead),
        machine=machine, sustain_s=sustain_s, memory_mb=memory, profile=profile,
    )


async def measure_store_bound(kafka: str, mongodb: str, database: str, events: list[ChannelEvent], *, hops: int,
                              partitions: int, processes: Processes, timeout: float) -> tuple[Phase, dict[str, Any]]:
    """The relays again, each hop doing its case's store work against the pipeline's own store, in a fresh
    database dropped after the run."""
    from shared.config import get_settings

    store = StoreWork(mongodb, database, in_flight=hops * get_settings().mongodb_max_connections)
    try:
        return await measure_raw(kafka, events, hops=hops, partitions=partitions, processes=processes,
                                 store=store, timeout=timeout)
    finally:
        await store.close()


async def drop_database(mongodb: str, database: str) -> None:
    """The pipeline's store of one run is dropped after it."""
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb)
    try:
        await client.drop_database(database)
    finally:
        await client.close()
