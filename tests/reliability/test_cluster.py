"""Nothing is lost on a three-broker cluster either: its brokers killed and restarted while complaints flow.

The module starts its own KRaft cluster (`triage infra up --brokers 3`: replication factor 3, min.insync.replicas
2, no unclean leader election) with its own FerretDB, and the pipeline services pointed at it. The scenarios
kill -9 the broker leading the busiest partitions, restart all three in turn, and keep one down throughout;
every complaint published must be routed exactly once. The last tests check that the topics really were
replicated three times, so none of this can pass on a single copy, and that the feed carries no milestone twice.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from shared import topics
from tests.conftest import TEST_STATE
from tests.reliability.scenarios import Db, database, infra_of_its_own, run_scenario
from tools import infra
from tools.processes import PIPELINE, Fleet, service_env

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]

CLUSTER_STATE = TEST_STATE / "cluster"
BUSY = (topics.CHANNEL_EVENTS, topics.CASE_RECEIVED)  # every complaint passes through these first
T = TypeVar("T")
INTERNAL = ("__consumer_offsets", "__transaction_state")


def quiet(_message: str) -> None:
    pass


@pytest.fixture(scope="module")
def cluster_endpoints() -> Iterator[infra.Endpoints]:
    with infra_of_its_own(CLUSTER_STATE, brokers=3) as found:  # this module needs brokers of its own to kill
        yield found


@pytest.fixture(scope="module")
def cluster(cluster_endpoints: infra.Endpoints) -> infra.LocalKafkaCluster:
    found = infra.LocalKafkaCluster.recorded(CLUSTER_STATE, progress=quiet)
    assert found is not None and found.bootstrap == cluster_endpoints.kafka_bootstrap
    return found


@pytest.fixture(scope="module")
def cluster_db_name() -> str:
    return f"triage_cluster_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def cluster_fleet(cluster_endpoints: infra.Endpoints, cluster_db_name: str, model_dir: Path) -> Iterator[Fleet]:
    ports: list[int] = []
    for _ in PIPELINE:
        ports.append(infra.free_port(exclude=ports))
    env = service_env(cluster_endpoints.kafka_bootstrap, cluster_endpoints.mongodb_uri,
                      MONGODB_DATABASE=cluster_db_name, MODEL_DIR=str(model_dir),
                      CONSUMER_GROUP_PREFIX=f"cluster-{cluster_db_name}", RETRY_MAX_SECONDS="1", DEV_MODE="true")
    fleet = Fleet(env, CLUSTER_STATE / "logs" / "services", dict(zip(PIPELINE, ports, strict=True)))
    fleet.start(timeout=180)
    yield fleet
    fleet.stop()


@pytest.fixture(scope="module")
async def cluster_db(cluster_endpoints: infra.Endpoints, cluster_db_name: str) -> AsyncIterator[Db]:
    async with database(cluster_endpoints.mongodb_uri, cluster_db_name) as db:
        yield db


@pytest.fixture
async def healthy_after(cluster_fleet: Fleet, cluster: infra.LocalKafkaCluster) -> AsyncIterator[Fleet]:
    yield cluster_fleet
    for node in cluster.nodes:  # whatever a scenario did, the next one starts on three brokers
        if not node.is_running():
            await asyncio.to_thread(node.start)
    await in_sync(cluster.bootstrap)
    assert all(service.running for service in cluster_fleet.services.values()), "a service died"
    await asyncio.to_thread(cluster_fleet.wait_healthy, 120)


async def patiently(ask: Callable[[], Awaitable[T]], seconds: float = 60) -> T:
    """Ask the cluster again while it is electing: a broker just killed is still in the metadata for a while."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await ask()
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1)


async def describe(bootstrap: str, names: list[str] | None = None) -> list[dict[str, Any]]:
    async def ask() -> list[dict[str, Any]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        await admin.start()
        try:
            return list(await admin.describe_topics(names))
        finally:
            await admin.close()

    return await patiently(ask)


async def busiest_leader(bootstrap: str) -> int:
    """The broker leading the partitions that hold most records of the topics every complaint is written to
    first (ties: the one leading most of them)."""
    led = {TopicPartition(t["topic"], p["partition"]): p["leader"]
           for t in await describe(bootstrap, list(BUSY)) for p in t["partitions"]}
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        ends = await reader.end_offsets(list(led))
    finally:
        await reader.stop()
    load: Counter[int] = Counter()
    for tp, leader in led.items():
        load[leader] += ends[tp] * 1000 + 1
    node = load.most_common(1)[0][0]
    print(f"\n  records (x1000) + partitions of {', '.join(BUSY)} led, by broker: {dict(load)}; killing {node}",
          flush=True)
    return node


async def written(bootstrap: str) -> int:
    """Records on the channel-events topic so far (its partitions' end offsets)."""
    partitions = [TopicPartition(topics.CHANNEL_EVENTS, p["partition"])
                  for t in await describe(bootstrap, [topics.CHANNEL_EVENTS]) for p in t["partitions"]]

    async def ask() -> int:
        reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=5000)
        await reader.start()
        try:
            return sum((await reader.end_offsets(partitions)).values())
        finally:
            await reader.stop()

    return await patiently(ask)


async def in_sync(bootstrap: str, timeout: float = 120) -> float:
    """Wait until every partition of every topic has a leader and all its replicas in sync; the seconds taken."""
    started = time.monotonic()
    while True:
        try:
            lagging = [(t["topic"], p["partition"]) for t in await describe(bootstrap) for p in t["partitions"]
                       if p["leader"] < 0 or set(p["isr"]) != set(p["replicas"])]
        except Exception as exc:  # a broker that restarts may refuse the first requests
            lagging = [("?", repr(exc))]
        if not lagging:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"not in sync after {timeout}s: {lagging[:5]}"
        await asyncio.sleep(0.5)


async def test_cluster_leader_kill9(healthy_after: Fleet, cluster: infra.LocalKafkaCluster,
                                    cluster_endpoints: infra.Endpoints, cluster_db: Db) -> None:
    """kill -9 of the broker leading most of the busiest partitions; the two left carry the load (for 8 s: past
    the broker session timeout, so its partitions get new leaders), then it restarts and catches up."""

    async def fault() -> None:
        node = cluster.node(await busiest_leader(cluster.bootstrap))
        before = await written(cluster.bootstrap)
        await asyncio.to_thread(node.stop, True)
        await asyncio.sleep(8)
        taken = await written(cluster.bootstrap) - before
        print(f"  {taken} complaints taken by the two brokers left", flush=True)
        assert taken > 0, "the two brokers left took no complaint"
        await asyncio.to_thread(node.start)
        print(f"  in sync again {await in_sync(cluster.bootstrap):.1f}s after {node.name} accepted", flush=True)

    await run_scenario("cluster_leader_kill9", cluster_endpoints, cluster_db, fault)


async def test_cluster_rolling_restart(healthy_after: Fleet, cluster: infra.LocalKafkaCluster,
                                       cluster_endpoints: infra.Endpoints, cluster_db: Db) -> None:
    """Each broker in turn stopped gracefully (its leadership moves away) and restarted; the next one only once
    every replica is in sync again, as an operator rolls an upgrade."""

    async def fault() -> None:
        for node in cluster.nodes:
            await asyncio.to_thread(node.stop)
            await asyncio.sleep(1)
            await asyncio.to_thread(node.start)
            print(f"  {node.name} restarted; in sync after {await in_sync(cluster.bootstrap):.1f}s", flush=True)

    await run_scenario("cluster_rolling_restart", cluster_endpoints, cluster_db, fault)


async def test_cluster_one_broker_down(healthy_after: Fleet, cluster: infra.LocalKafkaCluster,
                                      cluster_endpoints: infra.Endpoints, cluster_db: Db) -> None:
    """A broker down for the whole scenario (as during a long repair): with min.insync.replicas 2 the other two
    take every write; it comes back at the end and catches up."""
    node = cluster.node(2)
    await asyncio.to_thread(node.stop)

    async def fault() -> None:
        before = await written(cluster.bootstrap)
        await asyncio.sleep(10)
        assert await written(cluster.bootstrap) - before > 50, "two brokers of three did not keep up"
        await asyncio.to_thread(node.start)
        print(f"  {node.name} back; in sync after {await in_sync(cluster.bootstrap):.1f}s", flush=True)

    await run_scenario("cluster_one_broker_down", cluster_endpoints, cluster_db, fault)


async def test_topics_are_replicated_three_times(cluster_fleet: Fleet, cluster: infra.LocalKafkaCluster) -> None:
    """The broker defaults decide the replication of the topics the services create: three copies of each, the
    consumer offsets and the feed's transaction log included, so the scenarios above ran on a real cluster."""
    described = {t["topic"]: t["partitions"] for t in await describe(cluster.bootstrap)}
    assert {*BUSY, topics.CASE_CLASSIFIED, topics.CASE_ROUTED, topics.CASE_UPDATES, *INTERNAL} <= set(described)
    for name, partitions in described.items():
        assert partitions and all(len(p["replicas"]) == 3 for p in partitions), f"{name}: {partitions}"


async def test_the_feed_carries_each_milestone_once(cluster_fleet: Fleet, cluster: infra.LocalKafkaCluster) -> None:
    """The feed's transactional relay ran through the same kills and restarts: what it committed holds no
    milestone twice."""
    partitions = [TopicPartition(topics.CASE_UPDATES, p["partition"])
                  for t in await describe(cluster.bootstrap, [topics.CASE_UPDATES]) for p in t["partitions"]]
    assert partitions
    reader = AIOKafkaConsumer(bootstrap_servers=cluster.bootstrap, isolation_level="read_committed",
                              enable_auto_commit=False, auto_offset_reset="earliest")
    await reader.start()
    try:
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        ends = await reader.end_offsets(partitions)
        seen: Counter[str] = Counter()
        while [tp for tp in partitions if await reader.position(tp) < ends[tp]]:
            for records in (await reader.getmany(timeout_ms=1000)).values():
                seen.update(json.loads(r.value or b"{}").get("event_id", "") for r in records)
    finally:
        await reader.stop()
    assert sum(seen.values()) > 0
    assert [event for event, count in seen.items() if count > 1] == []
