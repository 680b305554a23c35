"""End-to-end fixtures: the real Kafka broker and FerretDB (started here unless KAFKA_BOOTSTRAP_SERVERS
and MONGODB_URI point elsewhere) and the four services, each in its own process as deployed."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from shared import topics
from shared.adapters.mongo.shardlog import field_key
from tools import infra, paths
from tools.processes import Fleet, service_env

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parents[1]
# Separate state dirs let several test sessions run side by side (each wipes its own at start).
TEST_STATE = Path(os.environ.get("TRIAGE_TEST_STATE_DIR", REPO_ROOT / ".triage" / "test"))


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The classification model the services load: `make test` builds it first; built here (through
    tools.model, which skips an up-to-date one) when the tests run on their own."""
    from tools.model.build import DEFAULT_MODEL_DIR, build_model

    build_model(DEFAULT_MODEL_DIR)
    return DEFAULT_MODEL_DIR


@pytest.fixture(scope="session")
def endpoints() -> Iterator[infra.Endpoints]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("MONGODB_URI")
    if not external:
        infra.down(TEST_STATE, progress=lambda _m: None)
        # A fresh broker and store each session: no topic or group state leaks between runs.
        for data in ("kafka/data", "ferretdb-data", "ferretdb/data"):
            shutil.rmtree(TEST_STATE / data, ignore_errors=True)
    found = infra.up(TEST_STATE, kafka_port=infra.free_port(), mongo_port=infra.free_port())
    yield found
    if not external:
        infra.down(TEST_STATE, progress=lambda _m: None)


@pytest.fixture(scope="session")
def database_name() -> str:
    return f"triage_e2e_{uuid.uuid4().hex[:8]}"


SERVICES = ("intake", "classification", "routing", "followup", "feed", "desk_api", "open311")
DESK_TOKENS = {f"e2e-token-{unit}": unit for unit in ("police", "mediation", "visitor", "legal", "command")}
SUPERVISOR_TOKEN = "e2e-supervisor-token"
OPEN311_KEY = "e2e-open311-portal-key"
# The fleet's master key, fresh each session (the public development key would do in DEV_MODE, but a test of
# encryption should not pass because a known key happens to be in use).
MASTER_KEY = base64.b64encode(os.urandom(96)).decode()


@pytest.fixture(scope="session")
def service_ports() -> dict[str, int]:
    ports: list[int] = []
    for _ in SERVICES:
        ports.append(infra.free_port(exclude=ports))
    return dict(zip(SERVICES, ports, strict=True))


@pytest.fixture(scope="session")
def fleet(endpoints: infra.Endpoints, database_name: str, service_ports: dict[str, int],
          model_dir: Path) -> Iterator[Fleet]:
    env = service_env(endpoints.kafka_bootstrap, endpoints.mongodb_uri, MONGODB_DATABASE=database_name,
                      MODEL_DIR=str(model_dir),
                      CONSUMER_GROUP_PREFIX=f"e2e-{database_name}", RETRY_MAX_SECONDS="1",
                      SIMULATED_CLOCK="true", TIMER_SCAN_SECONDS="0.5", DESK_TOKENS=json.dumps(DESK_TOKENS),
                      SUPERVISOR_TOKENS=json.dumps([SUPERVISOR_TOKEN]), FIGURES_FRESH_SECONDS="0",
                      OPEN311_KEYS=json.dumps({OPEN311_KEY: "portal"}), ENCRYPTION_MASTER_KEY=MASTER_KEY,
                      DESK_ASSETS_DIR=str(paths.ASSETS_DIR),  # htmx, put there by `make assets`
                      DEV_MODE="true")  # the development key and the simulated clock are for tests only
    services = Fleet(env, TEST_STATE / "logs" / database_name, service_ports)
    services.start(timeout=120)
    yield services
    services.stop()


@pytest.fixture(scope="session")
async def producer(endpoints: infra.Endpoints) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=endpoints.kafka_bootstrap, acks="all")
    await p.start()
    yield p
    await p.stop()


@pytest.fixture(scope="session")
async def db(endpoints: infra.Endpoints, database_name: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(endpoints.mongodb_uri, tz_aware=True)
    yield client[database_name]
    await client.close()


@pytest.fixture
async def feed(endpoints: infra.Endpoints) -> AsyncIterator[AIOKafkaConsumer]:
    """A reader of the status feed from its beginning, as an upstream system reads it: committed records only."""
    consumer = AIOKafkaConsumer(topics.CASE_UPDATES, bootstrap_servers=endpoints.kafka_bootstrap,
                                isolation_level="read_committed", auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    yield consumer
    await consumer.stop()


@pytest.fixture(scope="session")
def desk_url(fleet: Fleet) -> str:
    return f"http://127.0.0.1:{fleet['desk_api'].port}"


def token(unit: str) -> str:
    return next(t for t, u in DESK_TOKENS.items() if u == unit)


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 60.0, what: str = "") -> T:
    """Poll until `probe` returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = await probe()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or probe}")
        await asyncio.sleep(0.2)


def channel_event(text: str, *, channel: str = "12345", event_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id or f"e2e-{uuid.uuid4().hex[:12]}",
        "channel": channel,
        "occurred_at": "2026-11-27T09:30:00+08:00",
        "text": text,
        **extra,
    }


async def publish(producer: AIOKafkaProducer, body: dict[str, Any] | bytes, topic: str = topics.CHANNEL_EVENTS) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    await producer.send_and_wait(topic, raw)


async def timers_of(db: AsyncDatabase[dict[str, Any]], case_id: str) -> tuple[list[dict[str, Any]], set[str]]:
    """The timers filed for a case, and which of them are finished (a test may read the buckets' whole log:
    its records are never deleted)."""
    filed: dict[str, dict[str, Any]] = {}
    done: set[str] = set()
    async for record in db.timer_buckets_log.find({}):
        for change in record["changes"]:
            if change["key"].startswith("t:") and change["value"]["case_id"] == case_id:
                filed.setdefault(change["value"]["id"], change["value"])
            elif change["key"].startswith("d:"):
                done.add(change["key"])
    return list(filed.values()), {i for i in filed if field_key(f"d:{i}") in done}
