"""`triage infra up | down | status`: the broker, the store and Prometheus together, started in parallel.

When KAFKA_BOOTSTRAP_SERVERS or MONGODB_URI is set, that endpoint is used and nothing is started for it.
Prometheus is started when asked (`triage infra up` and the runs of tools/processes.py ask; the test sessions
do not) and installed; without it the infrastructure is complete, only unmonitored.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tools.infra.cluster import LocalKafkaCluster
from tools.infra.component import (
    DEFAULT_READY_TIMEOUT,
    DEFAULT_STOP_TIMEOUT,
    ComponentStatus,
    Endpoints,
    LocalComponent,
    external_endpoint,
)
from tools.infra.ferretdb import LocalFerretDB
from tools.infra.host import InfraError, Progress, port_open, serialized
from tools.infra.kafka import LocalKafka
from tools.infra.prometheus import LocalPrometheus, installed


def _external_status(kind: str, endpoint: str) -> ComponentStatus:
    ready: bool | None
    if endpoint.startswith("mongodb+srv://"):
        ready = None  # needs a DNS SRV lookup; the driver will tell
    else:
        ready = port_open(*_first_host_port(endpoint, 27017 if kind == "mongodb" else 9092), timeout=2.0)
    return ComponentStatus(
        mode="external", server=kind, running=bool(ready), ready=ready, pid=None, endpoint=endpoint, log=None
    )


def _first_host_port(endpoint: str, default_port: int) -> tuple[str, int]:
    rest = endpoint.split("://", 1)[-1]
    rest = rest.rsplit("@", 1)[-1].split("/", 1)[0].split("?", 1)[0]
    first = rest.split(",", 1)[0].strip()
    host, sep, port = first.rpartition(":")
    if not sep or not port.isdigit():
        return first.strip("[]"), default_port
    return host.strip("[]"), int(port)


def _in_parallel(tasks: Sequence[Callable[[], None]]) -> None:
    """Run the tasks in threads; re-raise the first failure after all have finished."""
    if len(tasks) <= 1:
        for task in tasks:
            task()
        return
    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        futures = [pool.submit(task) for task in tasks]
    for future in futures:
        future.result()


def _local_kafka(state_dir: Path | str | None, port: int | None, say: Progress, *, cache_dir: Path | str | None,
                 brokers: int | None, ports: Sequence[int] | None) -> LocalKafka | LocalKafkaCluster:
    """The lone broker or the cluster `up` asked for; refused while the other one runs for this state dir."""
    quiet: Progress = lambda _message: None  # noqa: E731
    cluster = LocalKafkaCluster.recorded(state_dir, quiet)
    lone = LocalKafka(state_dir, port, cache_dir=cache_dir, progress=say)
    if brokers is None:
        brokers = cluster.layout.size if cluster is not None and cluster.is_running() else 1
    if brokers < 1:
        raise InfraError(f"--brokers must be at least 1, not {brokers}")
    if brokers == 1:
        if cluster is not None and cluster.is_running():
            raise InfraError(f"a {cluster.layout.size}-broker cluster runs for {lone.state_dir}; "
                             "run `triage infra down` first")
        return lone
    if lone.is_running():
        raise InfraError(f"a single broker runs for {lone.state_dir}; run `triage infra down` first")
    if ports is None and port is not None:
        ports = range(port, port + brokers)
    return LocalKafkaCluster.create(state_dir, brokers, ports, cache_dir=cache_dir, progress=say)


def _bootstrap(kafka: LocalKafka | LocalKafkaCluster) -> str:
    return kafka.bootstrap if isinstance(kafka, LocalKafkaCluster) else kafka.endpoint


def up(
    state_dir: Path | str | None = None,
    kafka_port: int | None = None,
    mongo_port: int | None = None,
    progress: Progress = print,
    *,
    cache_dir: Path | str | None = None,
    timeout: float = DEFAULT_READY_TIMEOUT,
    monitor: bool = False,
    prometheus_port: int | None = None,
    brokers: int | None = None,
    kafka_ports: Sequence[int] | None = None,
) -> Endpoints:
    """Provision and start what is not running yet; return the endpoints once they accept connections.
    With `monitor`, a local Prometheus too (when Debian's package is installed; otherwise it says so).
    With `brokers` > 1, a local KRaft cluster of that many nodes (tools/infra/cluster.py) on `kafka_ports`
    (default: kafka_port and the ports after it) instead of the lone broker; by default, whichever of the two
    runs for this state dir, else the lone broker."""
    started = time.monotonic()
    say = serialized(progress)
    kafka_ext, mongo_ext = external_endpoint("KAFKA_BOOTSTRAP_SERVERS"), external_endpoint("MONGODB_URI")
    local: list[LocalComponent] = []
    kafka: LocalKafka | LocalKafkaCluster | None = None
    ferret: LocalFerretDB | None = None
    if kafka_ext:
        say(f"kafka: using KAFKA_BOOTSTRAP_SERVERS={kafka_ext}; no local broker")
    else:
        kafka = _local_kafka(state_dir, kafka_port, say, cache_dir=cache_dir, brokers=brokers, ports=kafka_ports)
        local.extend(kafka.nodes if isinstance(kafka, LocalKafkaCluster) else [kafka])
    if mongo_ext:
        say("mongodb: using MONGODB_URI; no local FerretDB")
    else:
        ferret = LocalFerretDB(state_dir, mongo_port, cache_dir=cache_dir, progress=say)
        local.append(ferret)
    prometheus: LocalPrometheus | None = None
    if monitor and installed():
        prometheus = LocalPrometheus(state_dir, prometheus_port, cache_dir=cache_dir, progress=say)
        local.append(prometheus)
    elif monitor:
        say("prometheus: not installed, so the local run is not monitored (`make prometheus` installs it)")
    ports = [component.port for component in local]
    if len(set(ports)) < len(ports):
        raise InfraError(f"two local servers cannot share a port: {dict((c.name, c.port) for c in local)}")

    # In parallel: on a cold machine the jars download while Go compiles, and both servers boot at once.
    pending = [component for component in local if not component.is_running()]
    _in_parallel([component.provision for component in pending])
    # The nodes of a cluster format their log dirs side by side too (a JVM start each).
    _in_parallel([functools.partial(component.start, wait=False) for component in local])
    _in_parallel([functools.partial(component.wait_ready, timeout) for component in local])

    endpoints = Endpoints(
        kafka_bootstrap=_bootstrap(kafka) if kafka else str(kafka_ext),
        mongodb_uri=ferret.endpoint if ferret else str(mongo_ext),
        prometheus_url=prometheus.endpoint if prometheus else None,
    )
    say(
        f"infra up in {time.monotonic() - started:.1f}s: kafka {endpoints.kafka_bootstrap}, "
        f"mongodb {endpoints.mongodb_uri}" + (f", prometheus {prometheus.endpoint}" if prometheus else "")
    )
    return endpoints


def down(
    state_dir: Path | str | None = None, progress: Progress = print, *, timeout: float = DEFAULT_STOP_TIMEOUT
) -> None:
    """Stop the local servers of this state dir (whatever the environment says); data stays."""
    components: tuple[LocalComponent, ...] = (
        LocalPrometheus(state_dir, progress=progress),
        LocalFerretDB(state_dir, progress=progress),
        LocalKafka(state_dir, progress=progress),
    )
    for component in components:
        if component.is_running():
            component.stop(timeout=timeout)
        else:
            progress(f"{component.name}: not running")
    cluster = LocalKafkaCluster.recorded(state_dir, progress)
    if cluster is not None:
        cluster.stop(timeout=timeout)


def status(state_dir: Path | str | None = None) -> dict[str, ComponentStatus]:
    """Per component ("kafka", or "kafka-1" ... for a cluster's nodes, "mongodb", "prometheus"): mode, server,
    running, ready, pid, endpoint, log. A cluster's nodes are shown when it was the last started or one of them
    runs. A Prometheus that is not running is not counted against readiness (ready None): it is optional."""
    kafka_ext, mongo_ext = external_endpoint("KAFKA_BOOTSTRAP_SERVERS"), external_endpoint("MONGODB_URI")
    quiet: Progress = lambda _message: None  # noqa: E731
    prometheus = LocalPrometheus(state_dir, progress=quiet).status()
    if not prometheus["running"]:
        prometheus["ready"] = None
    kafka: dict[str, ComponentStatus] = {}
    if kafka_ext:
        kafka["kafka"] = _external_status("kafka", kafka_ext)
    else:
        lone, cluster = LocalKafka(state_dir, progress=quiet), LocalKafkaCluster.recorded(state_dir, quiet)
        if cluster is not None and (cluster.is_running() or not lone.is_running()):
            kafka.update({node.name: node.status() for node in cluster.nodes})
        else:
            kafka["kafka"] = lone.status()
    return {
        **kafka,
        "mongodb": _external_status("mongodb", mongo_ext)
        if mongo_ext
        else LocalFerretDB(state_dir, progress=quiet).status(),
        "prometheus": prometheus,
    }


def all_ready(statuses: dict[str, ComponentStatus]) -> bool:
    return all(item["ready"] is not False for item in statuses.values())


def format_status(statuses: dict[str, ComponentStatus]) -> str:
    def state(item: ComponentStatus) -> str:
        if item["mode"] == "external":
            return {True: "reachable", False: "unreachable", None: "unchecked"}[item["ready"]]
        if item["ready"]:
            return "ready"
        return "starting" if item["running"] else "stopped"

    header = ("COMPONENT", "SERVER", "MODE", "STATE", "PID", "ENDPOINT", "LOG")
    rows = [header] + [
        (
            name,
            item["server"],
            item["mode"],
            state(item),
            str(item["pid"] or "-"),
            item["endpoint"],
            item["log"] or "-",
        )
        for name, item in statuses.items()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """`triage infra up | down | status`."""
    parser = argparse.ArgumentParser(
        prog="triage infra",
        description="Start, stop and inspect the local Kafka broker, FerretDB and Prometheus (no Docker needed).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    state_help = "state dir (default: $TRIAGE_STATE_DIR or <repo>/.triage)"
    p_up = commands.add_parser("up", help="provision and start what is not running; wait until ready")
    p_up.add_argument("--state-dir", type=Path, help=state_help)
    p_up.add_argument("--kafka-port", type=int, help="default: $TRIAGE_KAFKA_PORT or 9092 (a cluster: the first)")
    p_up.add_argument("--brokers", type=int, help="3: a local KRaft cluster (replication factor 3, min.insync.replicas "
                      "2) instead of one broker; default: what runs, else 1")
    p_up.add_argument("--mongo-port", type=int, help="default: $TRIAGE_MONGO_PORT or 27017")
    p_up.add_argument("--prometheus-port", type=int, help="default: $TRIAGE_PROMETHEUS_PORT or 9190")
    p_up.add_argument("--no-prometheus", action="store_true", help="start no local Prometheus")
    p_up.add_argument("--timeout", type=float, default=DEFAULT_READY_TIMEOUT, help="readiness timeout, seconds")
    p_down = commands.add_parser("down", help="stop the local servers (data is kept)")
    p_down.add_argument("--state-dir", type=Path, help=state_help)
    p_status = commands.add_parser("status", help="show what runs; exit 0 only when everything is ready")
    p_status.add_argument("--state-dir", type=Path, help=state_help)
    p_status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)

    try:
        if args.command == "up":
            endpoints = up(args.state_dir, args.kafka_port, args.mongo_port, timeout=args.timeout,
                           monitor=not args.no_prometheus, prometheus_port=args.prometheus_port,
                           brokers=args.brokers)
            for key, value in endpoints.as_env().items():
                print(f"export {key}={value}")
            if endpoints.prometheus_url:
                print(f"# prometheus: {endpoints.prometheus_url} (alerts: {endpoints.prometheus_url}/alerts)")
            return 0
        if args.command == "down":
            down(args.state_dir)
            return 0
        statuses = status(args.state_dir)
        print(json.dumps(statuses, indent=2) if args.json else format_status(statuses))
        return 0 if all_ready(statuses) else 1
    except InfraError as exc:
        print(f"triage infra {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
