"""A local Kafka cluster: n KRaft nodes (each broker + controller) from the same jars, in one state dir.

Node i keeps its data, server.properties and formatting in STATE/kafka-i, its pid file and log under the names
kafka-i. The layout every node must agree on (cluster id, each node's broker and controller port) is written
once to STATE/kafka-cluster.json and read back by every later `up`, `down` and `status`: a static quorum whose
voters moved would not form.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tools.infra.component import DEFAULT_KAFKA_PORT, DEFAULT_STOP_TIMEOUT, default_state_dir, env_port
from tools.infra.host import HOST, InfraError, Progress, flock, free_port, port_bindable
from tools.infra.kafka import LocalKafka, kafka_uuid

LAYOUT_FILE = "kafka-cluster.json"
CLUSTER_HEAP = "384m"  # three JVMs on a small machine; the local load needs far less


@dataclass(frozen=True)
class ClusterLayout:
    cluster_id: str
    ports: tuple[int, ...]  # node i's broker port is ports[i - 1]
    controller_ports: tuple[int, ...]

    @property
    def size(self) -> int:
        return len(self.ports)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{HOST}:{port}" for port in self.ports)

    @property
    def voters(self) -> str:
        return ",".join(f"{node}@{HOST}:{port}" for node, port in enumerate(self.controller_ports, 1))

    def durability(self) -> dict[str, str]:
        """What makes an acknowledged (acks=all) record survive a broker's loss: three copies, two of them in
        sync before the ack, and no out-of-sync replica ever elected leader."""
        factor = min(self.size, 3)
        in_sync = 2 if factor >= 3 else 1
        return {
            "controller.quorum.voters": self.voters,
            "default.replication.factor": str(factor),
            "min.insync.replicas": str(in_sync),
            "offsets.topic.replication.factor": str(factor),
            "transaction.state.log.replication.factor": str(factor),
            "transaction.state.log.min.isr": str(in_sync),
            "unclean.leader.election.enable": "false",
        }

    @classmethod
    def load(cls, path: Path) -> ClusterLayout | None:
        try:
            data = json.loads(path.read_text())
            return cls(str(data["cluster_id"]), tuple(int(p) for p in data["ports"]),
                       tuple(int(p) for p in data["controller_ports"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(asdict(self)) + "\n")
        tmp.replace(path)


class KafkaNode(LocalKafka):
    """Node `node_id` of a local cluster: the lone broker's process, with the cluster's id, voters and
    replication settings."""

    def __init__(self, layout: ClusterLayout, node_id: int, state_dir: Path | str | None = None, *,
                 cache_dir: Path | str | None = None, progress: Progress = print, heap: str | None = None) -> None:
        self.name = f"kafka-{node_id}"
        self.layout, self.node_id = layout, node_id
        super().__init__(state_dir, layout.ports[node_id - 1], cache_dir=cache_dir, progress=progress,
                         heap=heap or os.environ.get("TRIAGE_KAFKA_HEAP", CLUSTER_HEAP))

    def _cluster_id(self) -> str | None:
        return self.layout.cluster_id

    def _node_id(self, meta: dict[str, str]) -> int:
        return self.node_id

    def _controller_port(self) -> int:
        return self.layout.controller_ports[self.node_id - 1]

    def broker_properties(self, node_id: int = 1, controller_port: int = 9093) -> dict[str, str]:
        return {**super().broker_properties(node_id, controller_port), **self.layout.durability()}


def _state(state_dir: Path | str | None) -> Path:
    return Path(state_dir).expanduser().resolve() if state_dir else default_state_dir()


def _nodes(layout: ClusterLayout, state_dir: Path, **options: Any) -> list[KafkaNode]:
    return [KafkaNode(layout, node, state_dir, **options) for node in range(1, layout.size + 1)]


def resolve_layout(state_dir: Path, brokers: int, ports: Sequence[int] | None) -> ClusterLayout:
    """The recorded layout while any of its nodes runs; else the recorded one fitted to what is asked
    (same cluster id and controller ports where they still fit), saved for the next commands."""
    if brokers < 2:
        raise InfraError(f"a cluster needs at least two brokers, not {brokers}")
    if ports is not None and len(ports) != brokers:
        raise InfraError(f"{brokers} brokers need {brokers} ports, not {list(ports)}")
    path = state_dir / LAYOUT_FILE
    with flock(state_dir / "run" / "kafka-cluster.lock"):
        recorded = ClusterLayout.load(path)
        quiet: Progress = lambda _message: None  # noqa: E731
        if recorded is not None and any(node.is_running() for node in _nodes(recorded, state_dir, progress=quiet)):
            if recorded.size != brokers or (ports is not None and tuple(ports) != recorded.ports):
                raise InfraError(
                    f"a {recorded.size}-broker cluster already runs for {state_dir} on {recorded.bootstrap}; "
                    "run `triage infra down` first")
            return recorded
        same = recorded if recorded is not None and recorded.size == brokers else None
        if ports is None:
            base = env_port("TRIAGE_KAFKA_PORT", DEFAULT_KAFKA_PORT)
            ports = same.ports if same else tuple(range(base, base + brokers))
        wanted = tuple(ports)
        if len(set(wanted)) != len(wanted):
            raise InfraError(f"the brokers of a cluster need distinct ports, not {list(wanted)}")
        controllers: list[int] = []
        for node in range(brokers):
            kept = same.controller_ports[node] if same else None
            if kept is None or kept in wanted or kept in controllers or not port_bindable(kept):
                # OS-chosen, so it never lands on a well-known port; kept across restarts from then on.
                kept = free_port(exclude=(*wanted, *controllers))
            controllers.append(kept)
        layout = ClusterLayout(same.cluster_id if same else kafka_uuid(), wanted, tuple(controllers))
        if layout != recorded:
            layout.save(path)
        return layout


class LocalKafkaCluster:
    """The nodes of one state dir's cluster, started and stopped like the other components (node by node)."""

    def __init__(self, layout: ClusterLayout, state_dir: Path | str | None = None, *,
                 cache_dir: Path | str | None = None, progress: Progress = print, heap: str | None = None) -> None:
        self.state_dir = _state(state_dir)
        self.layout = layout
        self.progress = progress
        self.nodes = _nodes(layout, self.state_dir, cache_dir=cache_dir, progress=progress, heap=heap)

    @classmethod
    def create(cls, state_dir: Path | str | None = None, brokers: int = 3, ports: Sequence[int] | None = None,
               *, cache_dir: Path | str | None = None, progress: Progress = print,
               heap: str | None = None) -> LocalKafkaCluster:
        """The cluster `up` starts: `brokers` nodes on `ports` (default: the recorded ones, else 9092 onwards)."""
        state = _state(state_dir)
        return cls(resolve_layout(state, brokers, ports), state, cache_dir=cache_dir, progress=progress, heap=heap)

    @classmethod
    def recorded(cls, state_dir: Path | str | None = None, progress: Progress = print) -> LocalKafkaCluster | None:
        """The cluster this state dir last ran, as recorded (nothing is changed), or None."""
        layout = ClusterLayout.load(_state(state_dir) / LAYOUT_FILE)
        return cls(layout, state_dir, progress=progress) if layout else None

    @property
    def bootstrap(self) -> str:
        return self.layout.bootstrap

    def node(self, node_id: int) -> KafkaNode:
        return self.nodes[node_id - 1]

    def is_running(self) -> bool:
        return any(node.is_running() for node in self.nodes)

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop every node at once: one by one, the last ones would wait for a controller quorum that is gone."""
        running = [node for node in self.nodes if node.is_running()]
        for node in self.nodes:
            if node not in running:
                self.progress(f"{node.name}: not running")
        if running:
            with ThreadPoolExecutor(max_workers=len(running)) as pool:
                futures = [pool.submit(functools.partial(node.stop, timeout=timeout)) for node in running]
            for future in futures:
                future.result()
