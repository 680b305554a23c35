"""Apache Kafka 3.9 in KRaft mode (one node, broker + controller), run from its Maven Central jars."""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from tools import paths
from tools.infra.component import DEFAULT_KAFKA_PORT, LocalComponent
from tools.infra.host import HOST, InfraError, Progress, digest, flock, free_port, port_bindable, run_streaming, which

KAFKA_POM = paths.DEPLOY_DIR / "kafka" / "pom.xml"
KAFKA_LOG4J = paths.DEPLOY_DIR / "kafka" / "log4j.properties"


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    return which("java", "the Kafka broker needs Java 17+ (e.g. `apt-get install openjdk-17-jre-headless`)")


def kafka_uuid() -> str:
    # Kafka's Uuid.toString: URL-safe base64 without padding; it never hands out one starting with '-'.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def read_properties(path: Path) -> dict[str, str]:
    props: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


class LocalKafka(LocalComponent):
    """Single-node KRaft Kafka (broker + controller) from the jars resolved by deploy/kafka/pom.xml."""

    name = "kafka"
    server = "apache-kafka"
    port_env = "TRIAGE_KAFKA_PORT"
    external_env = "KAFKA_BOOTSTRAP_SERVERS"
    default_port = DEFAULT_KAFKA_PORT

    def __init__(
        self,
        state_dir: Path | str | None = None,
        port: int | None = None,
        *,
        cache_dir: Path | str | None = None,
        progress: Progress = print,
        heap: str | None = None,
        num_partitions: int = 6,
    ) -> None:
        super().__init__(state_dir, port, cache_dir=cache_dir, progress=progress)
        self.home = self.state_dir / self.name
        self.data_dir = self.home / "data"
        self.properties_file = self.home / "server.properties"
        self.heap = heap or os.environ.get("TRIAGE_KAFKA_HEAP", "512m")
        self.num_partitions = num_partitions

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def libs_dir(self) -> Path:
        return self.cache_dir / f"kafka-libs-{digest(KAFKA_POM)}"

    def _marker(self) -> str:
        return str(self.state_dir / self.name / "server.properties")  # before __init__ sets self.home

    def provision(self) -> None:
        if self._provisioned:
            return
        complete = self.libs_dir / ".complete"
        if complete.exists():
            self.progress(f"kafka: jars cached in {self.libs_dir}")
        else:
            mvn = which(
                "mvn",
                "Maven downloads the Kafka jars (e.g. `apt-get install maven`), "
                "or set KAFKA_BOOTSTRAP_SERVERS to use an existing broker",
            )
            with flock(self.cache_dir / "kafka-libs.lock"):
                if not complete.exists():  # another process may have finished while we waited
                    self._download(mvn)
        self._provisioned = True

    def _download(self, mvn: str) -> None:
        started = time.monotonic()
        tmp = self.libs_dir.with_name(f"{self.libs_dir.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        self.progress(f"kafka: resolving the broker jars from Maven Central into {self.libs_dir} (once per pom)")
        run_streaming(
            [
                mvn,
                "-B",
                "-f",
                str(KAFKA_POM),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={tmp}",
                "-DincludeScope=runtime",
            ],
            cwd=self.cache_dir,
            progress=self.progress,
            prefix="kafka/mvn",
            log_path=self.log_dir / "provision-kafka.log",
        )
        jars = sorted(tmp.glob("*.jar"))
        if not any(jar.name.startswith("kafka_2.13-") for jar in jars):
            raise InfraError(f"mvn finished but {tmp} holds no kafka_2.13 jar")
        shutil.rmtree(self.libs_dir, ignore_errors=True)  # leftovers of a run that died before the marker
        tmp.rename(self.libs_dir)
        (self.libs_dir / ".complete").write_text(f"{len(jars)} jars\n")
        self.progress(f"kafka: {len(jars)} jars ready in {time.monotonic() - started:.1f}s")

    def _controller_port(self) -> int:
        # An OS-chosen port, kept across restarts, so it never lands on a well-known port like 27017.
        record = self.home / "controller.port"
        with contextlib.suppress(OSError, ValueError):
            port = int(record.read_text().strip())
            if port != self.port and port_bindable(port):
                return port
        port = free_port(exclude=(self.port,))
        record.write_text(f"{port}\n")
        return port

    def _cluster_id(self) -> str | None:
        """The cluster id the log dir must be formatted with; None: any (a lone broker keeps its own)."""
        return None

    def _node_id(self, meta: dict[str, str]) -> int:
        # Keep the node id the log dir was formatted with.
        return int(meta.get("node.id", "1"))

    def _prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        meta_file = self.data_dir / "meta.properties"
        meta = read_properties(meta_file) if meta_file.exists() else {}
        wanted = self._cluster_id()
        if meta and wanted and meta.get("cluster.id") != wanted:
            self.progress(f"{self.name}: {self.data_dir} was formatted for cluster {meta.get('cluster.id')}, "
                          f"not {wanted}; wiping it to format afresh")
            shutil.rmtree(self.data_dir)
            meta = {}
        self._write_properties(self._node_id(meta), self._controller_port())
        if meta:
            return
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            self.progress(f"{self.name}: {self.data_dir} has no meta.properties; wiping it to format afresh")
            shutil.rmtree(self.data_dir)
        cluster_id = wanted or kafka_uuid()
        self.progress(f"{self.name}: formatting {self.data_dir} (cluster id {cluster_id})")
        cmd = [
            java(),
            *self._jvm_options("256m"),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(self.properties_file),
        ]
        result = subprocess.run(cmd, cwd=self.home, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise InfraError(f"formatting the Kafka log dir failed:\n{result.stdout}\n{result.stderr}")

    def _write_properties(self, node_id: int, controller_port: int) -> None:
        lines = ["# written by tools/infra/kafka.py on every start; edits are lost\n"]
        lines += [f"{key}={value}\n" for key, value in self.broker_properties(node_id, controller_port).items()]
        self.properties_file.write_text("".join(lines))

    def broker_properties(self, node_id: int = 1, controller_port: int = 9093) -> dict[str, str]:
        """server.properties of this broker (docker-compose.yml mirrors the non-local ones)."""
        props: dict[str, object] = {
            "process.roles": "broker,controller",
            "node.id": node_id,
            # Static voters: the log dir is formatted without --standalone.
            "controller.quorum.voters": f"{node_id}@{HOST}:{controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": self.data_dir,
            "num.partitions": self.num_partitions,
            "auto.create.topics.enable": "true",
            "default.replication.factor": 1,
            "min.insync.replicas": 1,
            "offsets.topic.replication.factor": 1,
            # Few partitions: creating 50 offsets partitions slows the first consumer group join.
            "offsets.topic.num.partitions": 6,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 6,
            "group.initial.rebalance.delay.ms": 0,
            # After a kill -9 the new incarnation is refused until the old session expires (default 9s).
            "broker.session.timeout.ms": 3000,
            "broker.heartbeat.interval.ms": 500,
        }
        return {key: str(value) for key, value in props.items()}

    def _jvm_options(self, heap: str) -> list[str]:
        return [
            f"-Xmx{heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration={KAFKA_LOG4J.as_uri()}",
            "-cp",
            f"{self.libs_dir}/*",
        ]

    def _command(self) -> list[str]:
        return [java(), *self._jvm_options(self.heap), "kafka.Kafka", str(self.properties_file)]
