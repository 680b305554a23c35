"""`triage bench`: the pipeline's throughput against the raw transport's, on the same broker, in one run.

1. Raw transport: the same N events (make_events, so the same sizes) relayed through as many
   consume-and-publish hops as the pipeline has, with no work. Each hop is its own consumer group and its
   own acks=all producer, configured like a service's, and commits only what it has published. The relays
   run in this process with aiokafka, over fresh topics made for the run and deleted after it.
2. Pipeline: N events published as fast as the broker takes them, timed until every case is routed.
3. Steady load: half the pipeline's maximum, offered for a minute (or `--sustain` seconds); publish → routed
   latency percentiles, and the services' memory at the start and end.

Throughput is N / (first publish → last arrival), the arrival being the broker timestamp of the last record
on the final topic (case-routed for the pipeline). Where the time goes is read without a profiler: the CPU
seconds of every process involved (/proc/<pid>/stat) and each service's triage_stage_seconds histogram.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import platform
import random
import re
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the clients are imported where they are used: `triage --help` stays quick
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient

    from services.cli.demo import RoutedWatcher
    from services.cli.processes import Fleet
    from shared.events import ChannelEvent

STEADY_SECONDS = 60.0  # without --sustain the steady load is offered for at most this long
SETTLE_SECONDS = 5.0  # no new arrival for this long after the last publish: ask the store what is missing
STALL_SECONDS = 60.0  # no new arrival for this long after the last publish: the rest is counted missing
IDLE_SECONDS = 5.0  # the processes' CPU with no events flowing, sampled before the pipeline is timed
WARMUP_CASES = 50  # routed before measuring: jieba's dictionary, the store's collections, the groups' joins
WARMUP_PREFIX = b"warm-up-"  # the keys of the raw transport's warm-up records
Say = Callable[[str], None]


# --------------------------------------------------------------------------- pure pieces


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def throughput(count: int, first_ms: float, last_ms: float) -> float:
    """Events per second from the first publish to the last arrival (wall-clock milliseconds)."""
    if count <= 0:
        return 0.0
    # Broker timestamps have millisecond resolution: never divide by less than one millisecond.
    return count / (max(last_ms - first_ms, 1.0) / 1000)


def ratio(pipeline_per_s: float, raw_per_s: float) -> float:
    return pipeline_per_s / raw_per_s if raw_per_s > 0 else 0.0


def steady_plan(max_per_s: float, cases: int, sustain_s: float | None = None) -> tuple[float, int]:
    """The steady offered load, half the measured maximum, and how many events to offer at it: for
    `sustain_s` seconds if given, else N events but no more than a minute's worth (at least one)."""
    rate = max_per_s / 2
    if rate <= 0:
        return 0.0, 0
    seconds = sustain_s if sustain_s is not None else STEADY_SECONDS
    count = max(1, round(rate * seconds))
    return rate, count if sustain_s is not None else min(cases, count)


def latencies_ms(sent_at: Mapping[str, float], arrived_at: Mapping[str, float]) -> list[float]:
    """Publish → arrival of each case that arrived, in milliseconds."""
    return [arrived_at[key] - sent for key, sent in sent_at.items() if key in arrived_at]


def parse_vmrss_kb(status: str) -> int | None:
    """VmRSS from the text of /proc/<pid>/status, in kB."""
    match = re.search(r"^VmRSS:\s+(\d+)\s+kB", status, re.MULTILINE)
    return int(match.group(1)) if match else None


def parse_cpu_seconds(stat: str, ticks_per_second: int) -> float:
    """User + system CPU seconds from the text of /proc/<pid>/stat (the command may hold spaces and ')')."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks_per_second  # utime, stime: fields 14 and 15


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text exposition → {'name{labels}': value}; comments and unparsable lines skipped."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match:
            with contextlib.suppress(ValueError):
                samples[match.group(1)] = float(match.group(2))
    return samples


def stage_profile(before: Mapping[str, Mapping[str, float]], after: Mapping[str, Mapping[str, float]],
                  wall_s: float) -> dict[str, dict[str, float]]:
    """Per service, from the triage_stage_seconds histogram scraped before and after: events handled, mean
    handler time, and the share of the wall time the handler was busy (1.0 = never idle)."""
    profile: dict[str, dict[str, float]] = {}
    for service, samples in after.items():
        earlier = before.get(service, {})
        sum_key = f'triage_stage_seconds_sum{{service="{service}"}}'
        count_key = f'triage_stage_seconds_count{{service="{service}"}}'
        busy = samples.get(sum_key, 0.0) - earlier.get(sum_key, 0.0)
        handled = samples.get(count_key, 0.0) - earlier.get(count_key, 0.0)
        profile[service] = {
            "handled": int(handled),
            "handler_mean_ms": round(1000 * busy / handled, 2) if handled else 0.0,
            "handler_busy": round(busy / wall_s, 3) if wall_s > 0 else 0.0,
        }
    return profile


def cpu_profile(before: Mapping[str, float], after: Mapping[str, float], events: int,
                wall_s: float) -> dict[str, dict[str, float]]:
    """Per process: CPU seconds spent between the snapshots, per event, and as a share of all of it."""
    spent = {name: max(0.0, after[name] - before[name]) for name in after if name in before}
    total = sum(spent.values())
    profile = {
        name: {
            "cpu_s": round(seconds, 2),
            "cpu_ms_per_event": round(1000 * seconds / events, 3) if events else 0.0,
            "share": round(seconds / total, 3) if total else 0.0,
            "cores": round(seconds / wall_s, 3) if wall_s > 0 else 0.0,
        }
        for name, seconds in sorted(spent.items(), key=lambda item: -item[1])
    }
    profile["total"] = {
        "cpu_s": round(total, 2),
        "cpu_ms_per_event": round(1000 * total / events, 3) if events else 0.0,
        "cores_busy": round(total / wall_s, 2) if wall_s > 0 else 0.0,
    }
    return profile


@dataclass
class Phase:
    """One timed run of events through a chain: how many went in, how many came out, how fast."""

    published: int
    arrived: int
    first_ms: float
    last_ms: float

    @property
    def wall_s(self) -> float:
        return max(self.last_ms - self.first_ms, 0.0) / 1000

    @property
    def per_s(self) -> float:
        return throughput(self.arrived, self.first_ms, self.last_ms)


@dataclass
class BenchResult:
    cases: int
    hops: int
    raw: Phase
    pipeline: Phase
    steady_rate: float
    steady_cases: int
    p50_ms: float
    p99_ms: float
    routed: int
    merged: int
    dead_lettered: int
    lost: int
    machine: dict[str, Any]
    raw_per_message: Phase | None = None
    sustain_s: float | None = None
    steady_routed: int = 0
    memory_mb: dict[str, dict[str, float | None]] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return ratio(self.pipeline.per_s, self.raw.per_s)

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "cases": self.cases,
            "raw_per_s": round(self.raw.per_s, 1),
            "pipeline_per_s": round(self.pipeline.per_s, 1),
            "ratio": round(self.ratio, 3),
            "steady_rate": round(self.steady_rate, 1),
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "lost": self.lost,
            "machine": self.machine,
            "hops": self.hops,
            "raw_wall_s": round(self.raw.wall_s, 2),
            "pipeline_wall_s": round(self.pipeline.wall_s, 2),
            "steady_cases": self.steady_cases,
            "steady_routed": self.steady_routed,
            "routed": self.routed,
            "merged": self.merged,
            "dead_lettered": self.dead_lettered,
        }
        if "all_stages_per_s" in self.profile.get("pipeline", {}):
            summary["all_stages_per_s"] = self.profile["pipeline"]["all_stages_per_s"]
        if self.raw_per_message is not None:
            summary["raw_per_message_per_s"] = round(self.raw_per_message.per_s, 1)
        if self.sustain_s is not None:
            summary["sustain_s"] = self.sustain_s
        summary["memory_mb"] = self.memory_mb
        summary["profile"] = self.profile
        return summary

    def report(self) -> list[str]:
        all_stages = self.profile.get("pipeline", {}).get("all_stages_per_s")
        lines = [
            f"raw transport, {self.hops} relay hops: {self.raw.per_s:.1f} events/s "
            f"({self.raw.arrived}/{self.raw.published} in {self.raw.wall_s:.2f} s)",
        ]
        if self.raw_per_message is not None:
            one_by_one = self.profile.get("raw_per_message", {}).get("cpu", {}).get("total", {})
            lines.append(f"raw transport, one event at a time per hop: "
                         f"{self.raw_per_message.per_s:.1f} events/s, "
                         f"{one_by_one.get('cpu_ms_per_event', 0)} CPU ms per event")
        lines += [
            f"pipeline: {self.pipeline.per_s:.1f} cases/s ({self.pipeline.arrived}/{self.pipeline.published} "
            f"routed in {self.pipeline.wall_s:.2f} s)",
            f"ratio pipeline/raw: {self.ratio:.3f}",
            *([f"with the follow-up done too: {all_stages:.1f} cases/s"] if all_stages is not None else []),
            f"steady load {self.steady_rate:.1f}/s, {self.steady_cases} cases: publish → routed "
            f"p50 {self.p50_ms} ms, p99 {self.p99_ms} ms",
            f"in the store: routed {self.routed}, merged as repeats {self.merged}, "
            f"dead-lettered {self.dead_lettered}, lost {self.lost}",
        ]
        cpu = self.profile.get("pipeline", {}).get("cpu", {})
        stages = self.profile.get("pipeline", {}).get("stages", {})
        if cpu:
            total = cpu.get("total", {})
            lines.append(f"where the pipeline's time goes (the max-throughput run until the follow-up was done "
                         f"too; {total.get('cores_busy', 0)} cores busy, "
                         f"{total.get('cpu_ms_per_event', 0)} CPU ms per case):")
            for name, row in cpu.items():
                if name == "total":
                    continue
                stage = stages.get(name)
                handler = (f"; handler {stage['handler_mean_ms']} ms/case, busy {stage['handler_busy']:.0%} "
                           f"of the wall time") if stage else ""
                lines.append(f"  {name:<15} CPU {row['cpu_s']:>7} s  {row['cpu_ms_per_event']:>7} ms/case  "
                             f"{row['share']:>5.0%}{handler}")
        idle = self.profile.get("idle", {}).get("cpu", {}).get("total")
        if idle:
            lines.append(f"idle floor: {idle['cores_busy']} cores busy with no events flowing")
        raw_cpu = self.profile.get("raw", {}).get("cpu", {}).get("total")
        if raw_cpu:
            lines.append(f"raw transport for comparison: {raw_cpu['cpu_ms_per_event']} CPU ms per event, "
                         f"{raw_cpu['cores_busy']} cores busy")
        if self.memory_mb:
            lines.append("memory (VmRSS, MB) at the start → end of the steady load: " + ", ".join(
                f"{name} {row['start']} → {row['end']}" for name, row in self.memory_mb.items()))
        return lines


# --------------------------------------------------------------------------- the machine and its processes


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"cores": os.cpu_count()}
    with contextlib.suppress(OSError, AttributeError):
        info["usable_cores"] = len(os.sched_getaffinity(0))
    with contextlib.suppress(OSError, StopIteration):
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                           if line.startswith("model name"))
    with contextlib.suppress(OSError, StopIteration, ValueError):
        kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
        info["mem_gb"] = round(kb / 1024 / 1024, 1)
    with contextlib.suppress(OSError):
        info["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    info["python"] = platform.python_version()
    info["kernel"] = platform.release()
    return info


def rss_mb(pid: int) -> float | None:
    try:
        kb = parse_vmrss_kb(Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return None
    return round(kb / 1024, 1) if kb is not None else None


def cpu_seconds(pid: int) -> float | None:
    try:
        return parse_cpu_seconds(Path(f"/proc/{pid}/stat").read_text(), os.sysconf("SC_CLK_TCK"))
    except (OSError, IndexError, ValueError):
        return None


def infra_pids() -> dict[str, int]:
    """The local Kafka broker's and FerretDB's pids, when this state dir runs them."""
    from services.cli import infra

    pids: dict[str, int] = {}
    quiet: infra.Progress = lambda _message: None  # noqa: E731
    for env, component in (("KAFKA_BOOTSTRAP_SERVERS", infra.LocalKafka), ("MONGODB_URI", infra.LocalFerretDB)):
        if os.environ.get(env, "").strip():
            continue
        with contextlib.suppress(Exception):
            pid = component(progress=quiet).pid()
            if pid is not None:
                pids[component.name] = pid
    return pids


class Processes:
    """The processes whose CPU and memory the benchmark reads: the services, the servers, and itself."""

    def __init__(self, services: Mapping[str, tuple[int, int]], servers: Mapping[str, int]) -> None:
        self.services = dict(services)  # name → (pid, metrics port)
        self.pids = {name: pid for name, (pid, _port) in services.items()} | dict(servers)
        self.pids["bench"] = os.getpid()

    @classmethod
    def of(cls, fleet: Fleet | None) -> Processes:
        services = {} if fleet is None else {
            name: (service.process.pid, service.port)
            for name, service in fleet.services.items() if service.process is not None
        }
        return cls(services, infra_pids())

    def cpu(self, names: Iterable[str] | None = None) -> dict[str, float]:
        readings = {name: cpu_seconds(self.pids[name]) for name in (names or self.pids) if name in self.pids}
        return {name: value for name, value in readings.items() if value is not None}

    def rss(self) -> dict[str, float | None]:
        return {name: rss_mb(pid) for name, (pid, _port) in self.services.items()}

    def handled(self) -> dict[str, float]:
        """Events each service has finished with, from its triage_stage_seconds count."""
        return {name: samples.get(f'triage_stage_seconds_count{{service="{name}"}}', 0.0)
                for name, samples in self.metrics().items()}

    async def wait_quiet(self, quiet_s: float = 3.0, timeout: float = 600.0) -> float:
        """Until no service has finished an event for `quiet_s`: the backlog behind the measured stage (the
        follow-up's) drained. Returns the wall-clock milliseconds of the last event finished."""
        last = await asyncio.to_thread(self.handled)
        last_move = time.time() * 1000
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            now = await asyncio.to_thread(self.handled)
            if now != last:
                last, last_move = now, time.time() * 1000
            elif time.time() * 1000 - last_move >= quiet_s * 1000:
                break
        return last_move

    def metrics(self) -> dict[str, dict[str, float]]:
        scraped = {}
        for name, (_pid, port) in self.services.items():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                    scraped[name] = parse_metrics(reply.read().decode())
            except OSError:
                scraped[name] = {}
        return scraped


# --------------------------------------------------------------------------- (a) the raw transport


class Relay:
    """One hop with no work: consume, publish to the next topic, commit once the publish is acknowledged."""

    def __init__(self, kafka: str, source: str, dest: str, group: str, per_message: bool) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        self.dest = dest
        self.per_message = per_message
        self.consumer = AIOKafkaConsumer(source, bootstrap_servers=kafka, group_id=group, client_id=group,
                                         enable_auto_commit=False, auto_offset_reset="earliest")
        self.producer = AIOKafkaProducer(bootstrap_servers=kafka, client_id=group, acks="all")
        self.relayed = 0

    async def start(self) -> None:
        await self.producer.start()
        await self.consumer.start()

    async def stop(self) -> None:
        try:
            await self.consumer.stop()
        finally:
            await self.producer.stop()

    def assigned(self) -> int:
        return len(self.consumer.assignment())

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            batches = await self.consumer.getmany(timeout_ms=100, max_records=1000)
            if not batches:
                continue
            if self.per_message:  # publish, await the ack, commit, next
                for tp, records in batches.items():
                    for record in records:
                        await (await self.producer.send(self.dest, record.value, key=record.key))
                        await self.consumer.commit({tp: record.offset + 1})
                        self.relayed += 1
                continue
            pending = [await self.producer.send(self.dest, record.value, key=record.key)
                       for records in batches.values() for record in records]
            await asyncio.gather(*pending)
            await self.consumer.commit()  # the positions just past the batch, all of it acknowledged
            self.relayed += len(pending)


async def _create_topics(admin: AIOKafkaAdminClient, names: list[str], partitions: int) -> None:
    from aiokafka.admin import NewTopic

    response = await admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    failed = [entry for entry in getattr(response, "topic_errors", []) if entry[1] != 0]
    if failed:
        raise RuntimeError(f"creating the benchmark topics failed: {failed}")
    # Every partition led before a client asks for offsets, or aiokafka warns and retries.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        described = await admin.describe_topics(names)
        if len(described) == len(names) and all(
            topic["error_code"] == 0 and len(topic["partitions"]) == partitions
            and all(p["error_code"] == 0 and p["leader"] >= 0 for p in topic["partitions"])
            for topic in described
        ):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the benchmark topics have no leaders after 30s: {names}")


async def _wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {timeout}s")
        await asyncio.sleep(0.05)


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """While new topics settle their leaders aiokafka logs refusals as errors and retries; a real failure
    still ends the setup, by a timeout."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


async def _warm_up(producer: AIOKafkaProducer, reader: AIOKafkaConsumer, topic: str, timeout: float = 60) -> None:
    """Relay a few records end to end first, enough keys to touch every partition of every hop (60 keys miss
    one of 6 partitions with odds of 1 in 10,000): every leader known, every fetch position set."""
    keys = {f"{WARMUP_PREFIX.decode()}{i}".encode() for i in range(60)}
    await asyncio.gather(*[await producer.send(topic, b"{}", key=key) for key in keys])
    deadline = time.monotonic() + timeout
    while keys and time.monotonic() < deadline:
        for records in (await reader.getmany(timeout_ms=200)).values():
            keys.difference_update(record.key for record in records)
    if keys:
        raise TimeoutError(f"{len(keys)} warm-up records did not come through the relays in {timeout}s")


async def _read_final(consumer: AIOKafkaConsumer, expected: int, published: asyncio.Event,
                      timeout: float) -> tuple[set[bytes], float]:
    """Read the last topic until every key has come through; the newest record timestamp seen."""
    seen: set[bytes] = set()
    last_ms = 0.0
    deadline = time.monotonic() + timeout
    last_new = time.monotonic()
    while len(seen) < expected and time.monotonic() < deadline:
        batches = await consumer.getmany(timeout_ms=200, max_records=5000)
        for records in batches.values():
            for record in records:
                if record.key is not None and record.key not in seen and not record.key.startswith(WARMUP_PREFIX):
                    seen.add(record.key)
                    last_ms = max(last_ms, float(record.timestamp))
                    last_new = time.monotonic()
        if published.is_set() and time.monotonic() - last_new > STALL_SECONDS:
            break
    return seen, last_ms


async def measure_raw(kafka: str, events: list[ChannelEvent], *, hops: int, partitions: int,
                      per_message: bool = False, processes: Processes | None = None,
                      timeout: float = 600) -> tuple[Phase, dict[str, Any]]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient

    run = uuid.uuid4().hex[:8]
    names = [f"triage.bench-{run}.hop{i}.v1" for i in range(hops + 1)]
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka, client_id=f"bench-{run}-admin")
    await admin.start()
    relays: list[Relay] = []
    tasks: list[asyncio.Task[None]] = []
    stop = asyncio.Event()
    reader = AIOKafkaConsumer(names[-1], bootstrap_servers=kafka, group_id=None, auto_offset_reset="earliest")
    producer = AIOKafkaProducer(bootstrap_servers=kafka, client_id=f"bench-{run}-source", acks="all")
    try:
        with _quiet("aiokafka"):
            await _create_topics(admin, names, partitions)
        relays = [Relay(kafka, names[i], names[i + 1], f"bench-{run}-hop{i}", per_message) for i in range(hops)]
        with _quiet("aiokafka"):
            for relay in relays:
                await relay.start()
            tasks = [asyncio.create_task(relay.run(stop), name=f"relay-{i}") for i, relay in enumerate(relays)]
            # Every hop owns all its partitions before the clock starts: the group joins are not the transport.
            await _wait_until(lambda: all(r.assigned() == partitions for r in relays), 60, "relay groups not joined")
            await reader.start()
            await _wait_until(lambda: len(reader.assignment()) == partitions, 60, "final reader not assigned")
            await producer.start()
        with _quiet("aiokafka"):
            await _warm_up(producer, reader, names[0])

        cpu_before = processes.cpu(["bench", "kafka"]) if processes else {}
        published = asyncio.Event()
        reading = asyncio.create_task(_read_final(reader, len(events), published, timeout))
        first_ms = time.time() * 1000
        pending = [await producer.send(names[0], event.model_dump_json().encode(), key=event.event_id.encode())
                   for event in events]
        await asyncio.gather(*pending)
        published.set()
        seen, last_ms = await reading
        cpu_after = processes.cpu(["bench", "kafka"]) if processes else {}
    finally:
        stop.set()
        for task in tasks:
            with contextlib.suppress(Exception):
                await task
        for relay in relays:
            with contextlib.suppress(Exception):
                await relay.stop()
        with contextlib.suppress(Exception):
            await reader.stop()
        with contextlib.suppress(Exception):
            await producer.stop()
        with contextlib.suppress(Exception):
            await admin.delete_topics(names)
        await admin.close()
    phase = Phase(len(events), len(seen), first_ms, last_ms or first_ms)
    return phase, {"cpu": cpu_profile(cpu_before, cpu_after, len(seen), phase.wall_s)}


# --------------------------------------------------------------------------- (b), (c) the pipeline


class StoreCheck:
    """Lookups by _id in the case store (FerretDB scans for anything else): which published events became
    routed cases, which joined an earlier open case as a repeat report (those are never routed)."""

    def __init__(self, mongodb: str, database: str) -> None:
        from pymongo import AsyncMongoClient

        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb, tz_aware=True)
        self.db = self.client[database]
        self.limit = asyncio.Semaphore(16)

    async def close(self) -> None:
        await self.client.close()

    async def outcome(self, event: ChannelEvent) -> str:
        from shared.events import case_id_for

        case_id = case_id_for(event.channel, event.event_id)
        async with self.limit:
            if await self.db.routings.find_one({"_id": f"{case_id}:0"}, {"_id": 1}) is not None:
                return "routed"
            receipt = await self.db.receipts.find_one({"_id": f"{event.channel.value}:{event.event_id}"})
        return "merged" if receipt is not None and receipt.get("case_id") != case_id else "missing"

    async def outcomes(self, events: list[ChannelEvent]) -> list[str]:
        return list(await asyncio.gather(*(self.outcome(event) for event in events)))

    async def dead_letters_since(self, since: datetime) -> int:
        return int(await self.db.dead_letters.count_documents({"at": {"$gte": since}}))


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
    from services.cli.demo import RoutedWatcher, publish_events

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


# --------------------------------------------------------------------------- the whole benchmark


async def run_bench(
    cases: int, kafka: str, mongodb: str, database: str, fleet: Fleet | None = None, *, hops: int = 4,
    partitions: int = 6, sustain_s: float | None = None, raw_per_message: bool = False, progress: bool = True,
    seed: int | None = None,
) -> BenchResult:
    from services.cli.demo import load_samples, make_events, percentile

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
        profile["pipeline"] = {
            "all_stages_per_s": round(drained.per_s, 1),
            "cpu": cpu_profile(snapshot["cpu"], processes.cpu(), len(arrived), drained.wall_s),
            "stages": stage_profile(snapshot["metrics"], processes.metrics(), drained.wall_s),
        }

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
        cases=cases, hops=hops, raw=raw, raw_per_message=per_message, pipeline=pipeline,
        steady_rate=rate, steady_cases=steady_cases, steady_routed=len(steady_arrived),
        p50_ms=percentile(latencies, 0.50), p99_ms=percentile(latencies, 0.99),
        routed=routed, merged=merged, dead_lettered=dead, lost=max(0, len(published) - routed - merged - dead),
        machine=machine, sustain_s=sustain_s, memory_mb=memory, profile=profile,
    )

