"""What every fault scenario shares: a stream of complaints, the count of what the store routed, the summary.

`make reliability` runs every scenario of tests/reliability and prints the JSON summary written here as its
last line; the scenarios also run in the normal suite.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from shared import topics
from shared.events import case_id_for
from tests.conftest import channel_event
from tools import infra

Db = AsyncDatabase[dict[str, Any]]
SUMMARY = Path(__file__).resolve().parents[2] / ".triage" / "reliability-summary.json"
TEXTS = [
    "楼上住户每天半夜拖椅子，说了好几次都不改，影响孩子学习",
    "公司拖欠三个月工资一共一万二，老板一直推说资金周转不开",
    "小区门口的井盖松动了，晚上电动车压上去很危险",
    "有人在微信上冒充我领导让我转账，我差点就转了",
    "村里征地补偿款到现在还没发到位，村干部说再等等",
    "我想咨询一下离婚后孩子抚养费标准是怎么算的",
    "隔壁饭店油烟直排进我家窗户，找过老板没用",
]


@dataclass
class Scenario:
    name: str
    published: list[str] = field(default_factory=list)  # case ids, acknowledged by the broker
    routed: int = 0
    duplicated: int = 0
    dead_lettered: int = 0
    seconds: float = 0.0  # from the first complaint to the last one routed


RESULTS: list[Scenario] = []


class Stream:
    """Publishes a complaint every `interval` seconds until stopped, retrying through broker outages:
    a complaint counts as published only once the broker acknowledged it."""

    def __init__(self, kafka: str, scenario: Scenario, interval: float = 0.1) -> None:
        self.kafka, self.scenario, self.interval = kafka, scenario, interval
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def _run(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.kafka, acks="all", request_timeout_ms=5000)
        await producer.start()
        try:
            n = 0
            while not self._stop.is_set():
                event = channel_event(f"{TEXTS[n % len(TEXTS)]}（{self.scenario.name}第{n}件）",
                                      event_id=f"rel-{self.scenario.name}-{uuid.uuid4().hex[:10]}")
                body = json.dumps(event, ensure_ascii=False).encode()
                while True:
                    try:
                        await asyncio.wait_for(
                            producer.send_and_wait(topics.CHANNEL_EVENTS, body, key=event["event_id"].encode()), 10)
                        break
                    except (KafkaError, TimeoutError):
                        await asyncio.sleep(0.5)
                self.scenario.published.append(case_id_for("12345", event["event_id"]))
                n += 1
                await asyncio.sleep(self.interval)
        finally:
            await producer.stop()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task


async def settle(db: Db, scenario: Scenario, timeout: float = 180) -> None:
    """Wait until every published complaint is routed; count what the store holds for each."""
    pending = list(scenario.published)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        still = []
        for case_id in pending:  # by key: the store answers those without scanning
            if "0" not in ((await db.cases.find_one({"_id": case_id}, {"routings": 1})) or {}).get("routings", {}):
                still.append(case_id)
        pending = still
        if pending:
            await asyncio.sleep(1)
    scenario.routed = len(scenario.published) - len(pending)
    for case_id in scenario.published:
        case = await db.cases.find_one({"_id": case_id}, {"timeline": 1})
        kinds = [e["kind"] for e in (case or {}).get("timeline", [])]
        scenario.duplicated += max(0, kinds.count("routed") - 1) + max(0, kinds.count("received") - 1)
    RESULTS.append(scenario)
    write_summary()


def write_summary() -> None:
    summary = {
        "scenarios": len(RESULTS),
        "published": sum(len(s.published) for s in RESULTS),
        "routed": sum(s.routed for s in RESULTS),
        "lost": sum(len(s.published) - s.routed for s in RESULTS),
        "duplicated": sum(s.duplicated for s in RESULTS),
        "dead_lettered": sum(s.dead_lettered for s in RESULTS),
        "by_scenario": {s.name: {"published": len(s.published), "routed": s.routed, "duplicated": s.duplicated,
                                 "seconds": round(s.seconds, 1)} for s in RESULTS},
    }
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY.write_text(json.dumps(summary, ensure_ascii=False) + "\n")


async def run_scenario(name: str, endpoints: infra.Endpoints, db: Db,
                       fault: Callable[[], Awaitable[None]]) -> Scenario:
    scenario = Scenario(name)
    started = time.monotonic()
    dead_before = await db.dead_letters.count_documents({})
    stream = Stream(endpoints.kafka_bootstrap, scenario)
    stream.start()
    try:
        await asyncio.sleep(2)
        await fault()
        await asyncio.sleep(2)
    finally:
        await stream.stop()
    await settle(db, scenario)
    scenario.seconds = time.monotonic() - started
    scenario.dead_lettered = await db.dead_letters.count_documents({}) - dead_before
    write_summary()
    assert scenario.published, "the stream published nothing"
    assert scenario.routed == len(scenario.published), f"{name}: lost {len(scenario.published) - scenario.routed}"
    assert scenario.duplicated == 0, f"{name}: {scenario.duplicated} duplicated"
    assert scenario.dead_lettered == 0, f"{name}: good complaints were dead-lettered"
    return scenario


def port_of(address: str) -> int:
    return int(address.rstrip("/").rsplit(":", 1)[1])


@contextmanager
def infra_of_its_own(state: Path, brokers: int = 1) -> Iterator[infra.Endpoints]:
    """A broker (or a cluster) and a store for one module, fresh, whatever the environment points at: a module
    that kills brokers, or moves a simulated clock, or must not have the session's services take in its complaints."""
    quiet = lambda _m: None  # noqa: E731
    with pytest.MonkeyPatch.context() as mp:
        for name in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI"):
            mp.delenv(name, raising=False)
        infra.down(state, progress=quiet)
        shutil.rmtree(state, ignore_errors=True)  # no topic or group state leaks from an earlier run
        ports: list[int] = []
        for _ in range(brokers + 1):
            ports.append(infra.free_port(exclude=ports))
        started = time.monotonic()
        try:
            found = infra.up(state, kafka_port=ports[0], mongo_port=ports[-1], brokers=brokers,
                             kafka_ports=ports[:-1], progress=quiet)
            print(f"\n  {brokers} broker(s) and a store ready in {time.monotonic() - started:.1f}s: "
                  f"{found.kafka_bootstrap}", flush=True)
            yield found
        finally:
            infra.down(state, progress=quiet)


@asynccontextmanager
async def database(uri: str, name: str) -> AsyncIterator[Db]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    try:
        yield client[name]
    finally:
        await client.close()
