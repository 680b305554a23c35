"""The local Kafka cluster's configuration (tools/infra/cluster.py), checked without starting Java: what each
node's server.properties says, and the layout every later command reads back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools import infra
from tools.infra.cluster import LAYOUT_FILE, ClusterLayout, LocalKafkaCluster
from tools.infra.kafka import read_properties

PORTS = (39301, 39302, 39303)


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalKafkaCluster:
    monkeypatch.delenv("TRIAGE_KAFKA_HEAP", raising=False)
    return LocalKafkaCluster.create(tmp_path, 3, PORTS, cache_dir=tmp_path / "cache", progress=lambda _m: None)


def test_every_node_names_the_same_three_voters_and_replicates_three_times(cluster: LocalKafkaCluster) -> None:
    controllers = cluster.layout.controller_ports
    voters = ",".join(f"{n}@127.0.0.1:{port}" for n, port in zip((1, 2, 3), controllers, strict=True))
    for node_id, node in enumerate(cluster.nodes, 1):
        props = node.broker_properties(node_id, controllers[node_id - 1])
        assert props["controller.quorum.voters"] == voters
        assert props["node.id"] == str(node_id)
        assert props["process.roles"] == "broker,controller"
        assert props["listeners"] == (f"PLAINTEXT://127.0.0.1:{PORTS[node_id - 1]},"
                                      f"CONTROLLER://127.0.0.1:{controllers[node_id - 1]}")
        assert props["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{PORTS[node_id - 1]}"
        assert props["log.dirs"] == str(cluster.state_dir / f"kafka-{node_id}" / "data")
        assert {key: props[key] for key in (
            "default.replication.factor", "min.insync.replicas", "offsets.topic.replication.factor",
            "transaction.state.log.replication.factor", "transaction.state.log.min.isr",
            "unclean.leader.election.enable")} == {
            "default.replication.factor": "3", "min.insync.replicas": "2", "offsets.topic.replication.factor": "3",
            "transaction.state.log.replication.factor": "3", "transaction.state.log.min.isr": "2",
            "unclean.leader.election.enable": "false"}


def test_each_node_has_its_own_files_ports_and_a_modest_heap(cluster: LocalKafkaCluster) -> None:
    nodes = cluster.nodes
    assert [n.name for n in nodes] == ["kafka-1", "kafka-2", "kafka-3"]
    assert len({n.pid_file for n in nodes}) == len({n.log_file for n in nodes}) == len({n.home for n in nodes}) == 3
    assert len(set(cluster.layout.ports) | set(cluster.layout.controller_ports)) == 6
    assert all(n.heap == "384m" for n in nodes)
    assert cluster.bootstrap == ",".join(f"127.0.0.1:{p}" for p in PORTS)


def test_the_properties_written_are_the_ones_a_node_starts_with(cluster: LocalKafkaCluster) -> None:
    node = cluster.node(2)
    node.home.mkdir(parents=True)
    node._write_properties(2, node._controller_port())
    written = read_properties(node.properties_file)
    assert written == node.broker_properties(2, cluster.layout.controller_ports[1])
    assert node._marker() == str(node.properties_file)


def test_the_lone_broker_keeps_replication_factor_one(tmp_path: Path) -> None:
    props = infra.LocalKafka(tmp_path, 39400, cache_dir=tmp_path).broker_properties(1, 39401)
    assert props["default.replication.factor"] == props["min.insync.replicas"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:39401"
    assert "unclean.leader.election.enable" not in props


def test_the_layout_is_recorded_and_kept_by_the_next_commands(cluster: LocalKafkaCluster, tmp_path: Path) -> None:
    recorded = json.loads((tmp_path / LAYOUT_FILE).read_text())
    assert recorded["ports"] == list(PORTS) and recorded["cluster_id"] == cluster.layout.cluster_id

    again = LocalKafkaCluster.create(tmp_path, 3, progress=lambda _m: None)  # no ports: the recorded ones
    assert again.layout == cluster.layout
    seen = LocalKafkaCluster.recorded(tmp_path)
    assert seen is not None and seen.layout == cluster.layout
    assert LocalKafkaCluster.recorded(tmp_path / "elsewhere") is None

    moved = LocalKafkaCluster.create(tmp_path, 3, (39311, 39312, 39313), progress=lambda _m: None)
    assert moved.layout.cluster_id == cluster.layout.cluster_id  # same log dirs, so the same cluster
    bigger = LocalKafkaCluster.create(tmp_path, 5, progress=lambda _m: None)
    assert bigger.layout.cluster_id != cluster.layout.cluster_id and bigger.layout.size == 5


def test_a_layout_of_two_keeps_writes_going_with_one_copy_in_sync() -> None:
    durability = ClusterLayout("id", (1, 2), (3, 4)).durability()
    assert durability["default.replication.factor"] == "2" and durability["min.insync.replicas"] == "1"


@pytest.mark.parametrize(("brokers", "ports"), [(1, None), (3, (39301, 39302)), (3, (39301, 39301, 39302))])
def test_a_cluster_that_cannot_be_is_refused(tmp_path: Path, brokers: int, ports: tuple[int, ...] | None) -> None:
    with pytest.raises(infra.InfraError):
        LocalKafkaCluster.create(tmp_path, brokers, ports)


def test_status_shows_each_node_of_a_stopped_cluster(cluster: LocalKafkaCluster, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    statuses = infra.status(tmp_path)
    assert [name for name in statuses if name.startswith("kafka")] == ["kafka-1", "kafka-2", "kafka-3"]
    assert not any(statuses[f"kafka-{n}"]["running"] for n in (1, 2, 3))
    assert "kafka-2" in infra.format_status(statuses)


def test_up_refuses_a_cluster_of_no_brokers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:1/")
    with pytest.raises(infra.InfraError, match="at least 1"):
        infra.up(tmp_path, brokers=0, progress=lambda _m: None)
