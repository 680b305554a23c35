"""The local infrastructure of `triage infra`: real Kafka and FerretDB processes in a throw-away state dir.

The jars and the FerretDB binary come from the shared cache (TRIAGE_CACHE_DIR or
~/.cache/grievance-triage), so only the first run on a machine downloads and builds.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pymongo import MongoClient

from tools import infra

EXTERNAL_ENV = ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI")


@dataclass(frozen=True)
class Running:
    state_dir: Path
    kafka_port: int
    mongo_port: int
    endpoints: infra.Endpoints


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    state_dir = tmp_path_factory.mktemp("infra-state")
    kafka_port = infra.free_port()
    mongo_port = infra.free_port(exclude=(kafka_port,))
    # The e2e session may point the services at its own servers through these; here we want local ones.
    with pytest.MonkeyPatch.context() as mp:
        for name in EXTERNAL_ENV:
            mp.delenv(name, raising=False)
        try:
            endpoints = infra.up(state_dir, kafka_port, mongo_port)
            yield Running(state_dir, kafka_port, mongo_port, endpoints)
        finally:
            infra.down(state_dir)


@pytest.fixture
def no_external(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in EXTERNAL_ENV:
        monkeypatch.delenv(name, raising=False)


async def _produce(bootstrap: str, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()


async def _read_all(bootstrap: str, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        end = (await consumer.end_offsets([partition]))[partition]
        values: list[bytes] = []
        while await consumer.position(partition) < end:
            batch = await consumer.getmany(partition, timeout_ms=1000)
            values += [record.value for record in batch.get(partition, []) if record.value is not None]
        return values
    finally:
        await consumer.stop()


@pytest.mark.e2e
def test_up_reports_ready_and_second_up_reuses_the_processes(running: Running) -> None:
    assert running.endpoints == infra.Endpoints(
        f"127.0.0.1:{running.kafka_port}", f"mongodb://127.0.0.1:{running.mongo_port}/"
    )
    before = infra.status(running.state_dir)
    assert infra.all_ready(before)
    assert {item["mode"] for item in before.values()} == {"local"}

    messages: list[str] = []
    again = infra.up(running.state_dir, running.kafka_port, running.mongo_port, progress=messages.append)

    assert again == running.endpoints
    assert [item["pid"] for item in infra.status(running.state_dir).values()] == [
        item["pid"] for item in before.values()
    ]
    assert any("already running" in message for message in messages)
    assert infra.main(["status", "--state-dir", str(running.state_dir)]) == 0


@pytest.mark.e2e
async def test_kafka_survives_kill_9_and_keeps_its_data(running: Running) -> None:
    topic = f"infra-test-{uuid.uuid4().hex[:8]}"
    await _produce(running.endpoints.kafka_bootstrap, topic, b"before")
    kafka = infra.LocalKafka(running.state_dir, running.kafka_port)

    kafka.stop(kill=True)

    assert not kafka.is_running()
    assert not kafka.pid_file.exists()
    kafka.start()
    assert kafka.is_ready()
    await _produce(running.endpoints.kafka_bootstrap, topic, b"after")
    assert await _read_all(running.endpoints.kafka_bootstrap, topic) == [b"before", b"after"]


@pytest.mark.e2e
def test_ferretdb_stops_gracefully_and_keeps_its_data(running: Running) -> None:
    ferret = infra.LocalFerretDB(running.state_dir, running.mongo_port)
    with MongoClient[dict[str, object]](running.endpoints.mongodb_uri, serverSelectionTimeoutMS=5000) as client:
        client.infra_test.docs.insert_one({"_id": "kept", "n": 1})

    ferret.stop()
    assert not ferret.is_running()
    ferret.start(timeout=30)

    with MongoClient[dict[str, object]](running.endpoints.mongodb_uri, serverSelectionTimeoutMS=5000) as client:
        assert client.infra_test.docs.find_one({"_id": "kept"}) == {"_id": "kept", "n": 1}


@pytest.mark.e2e
def test_down_stops_both_and_removes_the_pid_files(running: Running, capsys: pytest.CaptureFixture[str]) -> None:
    assert infra.main(["down", "--state-dir", str(running.state_dir)]) == 0

    statuses = infra.status(running.state_dir)
    assert not any(item["running"] for item in statuses.values())
    assert not list((running.state_dir / "run").glob("*.pid"))
    capsys.readouterr()
    assert infra.main(["status", "--state-dir", str(running.state_dir)]) == 1
    assert "stopped" in capsys.readouterr().out


# The tests below start no server: no marker, they run with the unit tests.


def test_a_stale_pid_file_is_cleaned_up(tmp_path: Path, no_external: None) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    ferret = infra.LocalFerretDB(tmp_path, infra.free_port())
    ferret.run_dir.mkdir(parents=True)
    ferret.pid_file.write_text(f"{dead.pid}\n")
    kafka = infra.LocalKafka(tmp_path, infra.free_port())
    # A live pid that is not a Kafka of this state dir (a recycled pid) counts as stale as well.
    kafka.pid_file.write_text(f"{os.getpid()}\n")

    assert not ferret.is_running()
    assert not kafka.is_running()
    assert not ferret.pid_file.exists()
    assert not kafka.pid_file.exists()


def test_a_port_taken_by_another_process_gives_a_clear_error(tmp_path: Path, no_external: None) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        ferret = infra.LocalFerretDB(tmp_path, port, progress=lambda _message: None)

        with pytest.raises(infra.InfraError, match=f"port {port} .* in use"):
            ferret.start()

    assert not ferret.pid_file.exists()


def test_external_endpoints_start_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nobody = f"127.0.0.1:{infra.free_port()}"  # refused at once: no DNS lookup, no wait
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", nobody)
    monkeypatch.setenv("MONGODB_URI", "mongodb+srv://db.example/triage")

    endpoints = infra.up(tmp_path, progress=lambda _message: None)

    assert endpoints == infra.Endpoints(nobody, "mongodb+srv://db.example/triage")
    assert not (tmp_path / "run").exists()
    statuses = infra.status(tmp_path)
    assert {statuses["kafka"]["mode"], statuses["mongodb"]["mode"]} == {"external"}
    assert (statuses["prometheus"]["running"], statuses["prometheus"]["ready"]) == (False, None)  # not asked for
    assert statuses["kafka"]["ready"] is False
    assert statuses["mongodb"]["ready"] is None  # SRV records are left to the driver
