"""Local real infrastructure without Docker: `triage infra up | down | status`.

- Apache Kafka 3.9 in KRaft mode (one node, broker + controller), run from its Maven Central jars.
- FerretDB v1.24.2 (MongoDB wire protocol over SQLite), built from the Go module in deploy/ferretdb.

Both run as detached processes; pid files, logs and data live in the state dir
(TRIAGE_STATE_DIR, default <repo>/.triage). The jars and the binary live in a cache dir shared by
every state dir (TRIAGE_CACHE_DIR, default ~/.cache/grievance-triage), keyed by a hash of the
files they come from, so tests with throw-away state dirs do not download or build again.
When KAFKA_BOOTSTRAP_SERVERS or MONGODB_URI is set, that endpoint is used and nothing is started for it.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, TypedDict

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_POM = REPO_ROOT / "deploy" / "kafka" / "pom.xml"
KAFKA_LOG4J = REPO_ROOT / "deploy" / "kafka" / "log4j.properties"
FERRETDB_MODULE = REPO_ROOT / "deploy" / "ferretdb"

HOST = "127.0.0.1"
DEFAULT_KAFKA_PORT = 9092
DEFAULT_MONGO_PORT = 27017
DEFAULT_READY_TIMEOUT = 120.0
DEFAULT_STOP_TIMEOUT = 30.0
_LOG_ROTATE_BYTES = 20 * 1024 * 1024

Progress = Callable[[str], None]


class InfraError(RuntimeError):
    """A component could not be provisioned, started, stopped or reached."""


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap: str
    mongodb_uri: str

    def as_env(self) -> dict[str, str]:
        return {"KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap, "MONGODB_URI": self.mongodb_uri}


class ComponentStatus(TypedDict):
    mode: str  # "local" or "external"
    server: str
    running: bool
    ready: bool | None  # None: external endpoint that cannot be probed (mongodb+srv)
    pid: int | None
    endpoint: str
    log: str | None


# --------------------------------------------------------------------------- settings


def default_state_dir() -> Path:
    env = os.environ.get("TRIAGE_STATE_DIR")
    return Path(env).expanduser().resolve() if env else REPO_ROOT / ".triage"


def default_cache_dir() -> Path:
    if env := os.environ.get("TRIAGE_CACHE_DIR"):
        return Path(env).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "grievance-triage"


def _env_port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise InfraError(f"{name}={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise InfraError(f"{name}={port} is out of range")
    return port


def _external(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


# --------------------------------------------------------------------------- helpers

# Popen objects of children started by this interpreter: polling them reaps zombies and keeps
# Popen.__del__ from warning about a still running process.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _pid_alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(pid, 0); its /proc state tells it apart.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _cmdline(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    # Empty while the Java launcher re-execs itself: unknown, not foreign.
    return raw.replace(b"\0", b" ").decode(errors="replace") or None


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _port_bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option the servers use, so a port in TIME_WAIT after a restart counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port(exclude: Sequence[int] = ()) -> int:
    """An unused TCP port on 127.0.0.1 (for tests and the controller listener)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if port not in exclude:
            return port


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    """Exclusive lock across processes (two `up`s, or pytest and a shell, at the same time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _digest(*files: Path) -> str:
    sha = hashlib.sha256()
    for file in files:
        sha.update(file.name.encode())
        sha.update(file.read_bytes())
    return sha.hexdigest()[:12]


def _serialized(progress: Progress) -> Progress:
    lock = threading.Lock()

    def say(message: str) -> None:
        with lock:
            progress(message)

    return say


def _tail(path: Path, lines: int = 40, offset: int = 0) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return "(no log)"
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


def _run_streaming(cmd: list[str], *, cwd: Path, progress: Progress, prefix: str, log_path: Path) -> None:
    """Run a build step, passing each output line to progress and to a log file."""
    progress(f"{prefix}$ {shlex.join(cmd)}")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=40)
    with (
        log_path.open("a") as log,
        subprocess.Popen(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as proc,
    ):
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            tail.append(line)
            log.write(line + "\n")
            progress(f"{prefix}  {line}")
        code = proc.wait()
    if code != 0:
        out = "\n".join(tail)
        raise InfraError(f"`{shlex.join(cmd)}` failed with exit code {code}; last output:\n{out}\n(log: {log_path})")


def _which(tool: str, hint: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise InfraError(f"`{tool}` not found on PATH: {hint}")
    return found


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    return _which("java", "the Kafka broker needs Java 17+ (e.g. `apt-get install openjdk-17-jre-headless`)")


def _kafka_uuid() -> str:
    # Kafka's Uuid.toString: URL-safe base64 without padding; it never hands out one starting with '-'.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _read_properties(path: Path) -> dict[str, str]:
    props: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


# --------------------------------------------------------------------------- components


class LocalComponent:
    """A server process owned by a state dir: pid file in STATE/run, output in STATE/logs."""

    name: ClassVar[str]
    server: ClassVar[str]
    port_env: ClassVar[str]
    external_env: ClassVar[str]
    default_port: ClassVar[int]

    def __init__(
        self,
        state_dir: Path | str | None = None,
        port: int | None = None,
        *,
        cache_dir: Path | str | None = None,
        progress: Progress = print,
    ) -> None:
        self.state_dir = Path(state_dir).expanduser().resolve() if state_dir else default_state_dir()
        self.cache_dir = Path(cache_dir).expanduser().resolve() if cache_dir else default_cache_dir()
        self.progress = progress
        self.run_dir = self.state_dir / "run"
        self.log_dir = self.state_dir / "logs"
        self.pid_file = self.run_dir / f"{self.name}.pid"
        self.port_file = self.run_dir / f"{self.name}.port"
        self.log_file = self.log_dir / f"{self.name}.log"
        self._lock_file = self.run_dir / f"{self.name}.lock"
        self._log_offset = 0
        self._started_at: float | None = None
        self._provisioned = False
        # Explicit port, else the one a running instance was started on, else env/default.
        self.port = port if port is not None else self._recorded_port() or _env_port(self.port_env, self.default_port)

    # -- to implement
    @property
    def endpoint(self) -> str:
        raise NotImplementedError

    def provision(self) -> None:
        """Fetch or build what the process runs from (idempotent, cached)."""
        raise NotImplementedError

    def _prepare(self) -> None:
        """Write config and initialise data before each start."""

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _marker(self) -> str:
        """A string in the process's command line that ties it to this state dir."""
        raise NotImplementedError

    # -- process state
    def pid(self) -> int | None:
        """The pid of the running process, cleaning up a stale pid file."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            pid = None
        if pid is not None and _pid_alive(pid):
            cmdline = _cmdline(pid)
            # A recycled pid (after a reboot) belongs to some other program: not ours.
            if cmdline is None or self._marker() in cmdline:
                return pid
        if self.pid_file.exists():
            self._clear_run_files()
        return None

    def is_running(self) -> bool:
        return self.pid() is not None

    def is_ready(self) -> bool:
        return self.is_running() and _port_open(HOST, self.port)

    def _recorded_port(self) -> int | None:
        if self.pid() is None:
            return None
        try:
            return int(self.port_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _clear_run_files(self) -> None:
        self.pid_file.unlink(missing_ok=True)
        self.port_file.unlink(missing_ok=True)

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_file, lines, self._log_offset)

    # -- lifecycle
    def start(self, *, wait: bool = True, timeout: float = DEFAULT_READY_TIMEOUT) -> None:
        """Start the process unless it already runs; with wait, block until its port accepts."""
        with _flock(self._lock_file):
            pid = self.pid()
            if pid is not None:
                running_port = self._recorded_port()
                if running_port is not None and running_port != self.port:
                    raise InfraError(
                        f"{self.name} already runs (pid {pid}) on port {running_port} for {self.state_dir}, "
                        f"not on {self.port}; run `triage infra down` first"
                    )
                self.progress(f"{self.name}: already running (pid {pid}) on {self.endpoint}")
            else:
                if not _port_bindable(self.port):
                    raise InfraError(
                        f"port {self.port} on {HOST} is in use by a process that triage did not start "
                        f"for {self.state_dir}; stop it, choose another port ({self.port_env}=...), or use "
                        f"an existing server ({self.external_env}=...)"
                    )
                self.provision()
                self._prepare()
                self._spawn()
        if wait:
            self.wait_ready(timeout)

    def _spawn(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.log_file.exists() and self.log_file.stat().st_size > _LOG_ROTATE_BYTES:
            self.log_file.replace(self.log_file.with_suffix(".log.1"))
        cmd = self._command()
        with self.log_file.open("ab") as log:
            self._log_offset = log.tell()
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} triage starts: {shlex.join(cmd)}\n".encode())
            log.flush()
            # New session: the server outlives the CLI and is not hit by the terminal's Ctrl-C.
            proc = subprocess.Popen(
                cmd,
                cwd=self.state_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _CHILDREN[proc.pid] = proc
        self._started_at = time.monotonic()
        self.pid_file.write_text(f"{proc.pid}\n")
        self.port_file.write_text(f"{self.port}\n")
        self.progress(f"{self.name}: started pid {proc.pid} on {self.endpoint} (log {self.log_file})")

    def wait_ready(self, timeout: float = DEFAULT_READY_TIMEOUT) -> None:
        """Block until the port accepts TCP connections; fail early if the process dies."""
        deadline = time.monotonic() + timeout
        while True:
            pid = self.pid()
            if pid is None:
                raise InfraError(
                    f"{self.name} is not running (it exited or was never started) and does not listen on "
                    f"{HOST}:{self.port}; last lines of {self.log_file}:\n{self.log_tail()}"
                )
            if _port_open(HOST, self.port):
                if self._started_at is not None:
                    self.progress(f"{self.name}: ready in {time.monotonic() - self._started_at:.1f}s")
                    self._started_at = None
                return
            if time.monotonic() > deadline:
                raise InfraError(
                    f"{self.name} (pid {pid}) did not accept connections on {HOST}:{self.port} within "
                    f"{timeout:.0f}s; last lines of {self.log_file}:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self, kill: bool = False, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """SIGTERM (SIGKILL after timeout), or SIGKILL at once with kill=True; removes the pid file."""
        with _flock(self._lock_file):
            pid = self.pid()
            if pid is None:
                self._clear_run_files()
                return
            started = time.monotonic()
            self._signal(pid, signal.SIGKILL if kill else signal.SIGTERM)
            if not self._wait_exit(pid, 10.0 if kill else timeout):
                if kill:
                    raise InfraError(f"{self.name} (pid {pid}) survived SIGKILL")
                self.progress(f"{self.name}: pid {pid} still running {timeout:.0f}s after SIGTERM, sending SIGKILL")
                self._signal(pid, signal.SIGKILL)
                if not self._wait_exit(pid, 10.0):
                    raise InfraError(f"{self.name} (pid {pid}) survived SIGKILL")
            _CHILDREN.pop(pid, None)
            self._clear_run_files()
            how = "killed" if kill else "stopped"
            self.progress(f"{self.name}: {how} pid {pid} in {time.monotonic() - started:.1f}s")

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        try:
            os.killpg(pid, sig)  # the session leader's group: the server and anything it forked
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    @staticmethod
    def _wait_exit(pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while _pid_alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def status(self) -> ComponentStatus:
        pid = self.pid()
        return ComponentStatus(
            mode="local",
            server=self.server,
            running=pid is not None,
            ready=pid is not None and _port_open(HOST, self.port),
            pid=pid,
            endpoint=self.endpoint,
            log=str(self.log_file),
        )


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
        self.home = self.state_dir / "kafka"
        self.data_dir = self.home / "data"
        self.properties_file = self.home / "server.properties"
        self.heap = heap or os.environ.get("TRIAGE_KAFKA_HEAP", "512m")
        self.num_partitions = num_partitions

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def libs_dir(self) -> Path:
        return self.cache_dir / f"kafka-libs-{_digest(KAFKA_POM)}"

    def _marker(self) -> str:
        return str(self.state_dir / "kafka" / "server.properties")

    def provision(self) -> None:
        if self._provisioned:
            return
        complete = self.libs_dir / ".complete"
        if complete.exists():
            self.progress(f"kafka: jars cached in {self.libs_dir}")
        else:
            mvn = _which(
                "mvn",
                "Maven downloads the Kafka jars (e.g. `apt-get install maven`), "
                "or set KAFKA_BOOTSTRAP_SERVERS to use an existing broker",
            )
            with _flock(self.cache_dir / "kafka-libs.lock"):
                if not complete.exists():  # another process may have finished while we waited
                    self._download(mvn)
        self._provisioned = True

    def _download(self, mvn: str) -> None:
        started = time.monotonic()
        tmp = self.libs_dir.with_name(f"{self.libs_dir.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        self.progress(f"kafka: resolving the broker jars from Maven Central into {self.libs_dir} (once per pom)")
        _run_streaming(
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
            if port != self.port and _port_bindable(port):
                return port
        port = free_port(exclude=(self.port,))
        record.write_text(f"{port}\n")
        return port

    def _prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        meta_file = self.data_dir / "meta.properties"
        meta = _read_properties(meta_file) if meta_file.exists() else {}
        # Keep the node id the log dir was formatted with; the cluster id lives only in meta.properties.
        node_id = int(meta.get("node.id", "1"))
        self._write_properties(node_id, self._controller_port())
        if meta:
            return
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            self.progress(f"kafka: {self.data_dir} has no meta.properties; wiping it to format afresh")
            shutil.rmtree(self.data_dir)
        cluster_id = _kafka_uuid()
        self.progress(f"kafka: formatting {self.data_dir} (cluster id {cluster_id})")
        cmd = [
            _java(),
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
        lines = ["# written by services/cli/infra.py on every start; edits are lost\n"]
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
        return [_java(), *self._jvm_options(self.heap), "kafka.Kafka", str(self.properties_file)]


class LocalFerretDB(LocalComponent):
    """FerretDB over SQLite, built from deploy/ferretdb (its Go files, go.mod, go.sum)."""

    name = "ferretdb"
    server = "ferretdb"
    port_env = "TRIAGE_MONGO_PORT"
    external_env = "MONGODB_URI"
    default_port = DEFAULT_MONGO_PORT

    def __init__(
        self,
        state_dir: Path | str | None = None,
        port: int | None = None,
        *,
        cache_dir: Path | str | None = None,
        progress: Progress = print,
    ) -> None:
        super().__init__(state_dir, port, cache_dir=cache_dir, progress=progress)
        self.data_dir = self.state_dir / "ferretdb-data"

    @property
    def endpoint(self) -> str:
        return f"mongodb://{HOST}:{self.port}/"

    @property
    def binary(self) -> Path:
        sources = [*sorted(FERRETDB_MODULE.glob("*.go")), FERRETDB_MODULE / "go.mod", FERRETDB_MODULE / "go.sum"]
        return self.cache_dir / f"ferretdb-{_digest(*sources)}" / "ferretdb"

    def _marker(self) -> str:
        return str(self.state_dir / "ferretdb-data")

    def provision(self) -> None:
        if self._provisioned:
            return
        binary = self.binary
        if binary.is_file():
            self.progress(f"ferretdb: binary cached at {binary}")
        else:
            go = _which(
                "go",
                "the Go toolchain builds FerretDB from deploy/ferretdb (https://go.dev/dl/), "
                "or set MONGODB_URI to use an existing MongoDB",
            )
            with _flock(self.cache_dir / "ferretdb.lock"):
                if not binary.is_file():
                    self._build(go, binary)
        self._provisioned = True

    def _build(self, go: str, binary: Path) -> None:
        started = time.monotonic()
        binary.parent.mkdir(parents=True, exist_ok=True)
        tmp = binary.with_name(f"ferretdb.tmp-{os.getpid()}")
        self.progress(
            "ferretdb: building from deploy/ferretdb (once per source change; a cold Go cache "
            "takes a few minutes, mostly the pure-Go SQLite)"
        )
        # -mod=readonly: the committed go.sum must be complete; the build never edits it.
        _run_streaming(
            [go, "build", "-mod=readonly", "-v", "-ldflags=-s -w", "-o", str(tmp), "."],
            cwd=FERRETDB_MODULE,
            progress=self.progress,
            prefix="ferretdb/go",
            log_path=self.log_dir / "provision-ferretdb.log",
        )
        tmp.replace(binary)
        self.progress(f"ferretdb: built {binary} in {time.monotonic() - started:.1f}s")

    def _prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def _command(self) -> list[str]:
        return [str(self.binary), "-listen", f"{HOST}:{self.port}", "-data", str(self.data_dir)]


# --------------------------------------------------------------------------- whole set


def _external_status(kind: str, endpoint: str) -> ComponentStatus:
    ready: bool | None
    if endpoint.startswith("mongodb+srv://"):
        ready = None  # needs a DNS SRV lookup; the driver will tell
    else:
        ready = _port_open(*_first_host_port(endpoint, 27017 if kind == "mongodb" else 9092), timeout=2.0)
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


def up(
    state_dir: Path | str | None = None,
    kafka_port: int | None = None,
    mongo_port: int | None = None,
    progress: Progress = print,
    *,
    cache_dir: Path | str | None = None,
    timeout: float = DEFAULT_READY_TIMEOUT,
) -> Endpoints:
    """Provision and start what is not running yet; return the endpoints once they accept connections."""
    started = time.monotonic()
    say = _serialized(progress)
    kafka_ext, mongo_ext = _external("KAFKA_BOOTSTRAP_SERVERS"), _external("MONGODB_URI")
    local: list[LocalComponent] = []
    kafka: LocalKafka | None = None
    ferret: LocalFerretDB | None = None
    if kafka_ext:
        say(f"kafka: using KAFKA_BOOTSTRAP_SERVERS={kafka_ext}; no local broker")
    else:
        kafka = LocalKafka(state_dir, kafka_port, cache_dir=cache_dir, progress=say)
        local.append(kafka)
    if mongo_ext:
        say("mongodb: using MONGODB_URI; no local FerretDB")
    else:
        ferret = LocalFerretDB(state_dir, mongo_port, cache_dir=cache_dir, progress=say)
        local.append(ferret)
    if kafka and ferret and kafka.port == ferret.port:
        raise InfraError(f"Kafka and FerretDB cannot both use port {kafka.port}")

    # In parallel: on a cold machine the jars download while Go compiles, and both servers boot at once.
    pending = [component for component in local if not component.is_running()]
    _in_parallel([component.provision for component in pending])
    for component in local:
        component.start(wait=False)
    _in_parallel([functools.partial(component.wait_ready, timeout) for component in local])

    endpoints = Endpoints(
        kafka_bootstrap=kafka.endpoint if kafka else str(kafka_ext),
        mongodb_uri=ferret.endpoint if ferret else str(mongo_ext),
    )
    say(
        f"infra up in {time.monotonic() - started:.1f}s: kafka {endpoints.kafka_bootstrap}, "
        f"mongodb {endpoints.mongodb_uri}"
    )
    return endpoints


def down(
    state_dir: Path | str | None = None, progress: Progress = print, *, timeout: float = DEFAULT_STOP_TIMEOUT
) -> None:
    """Stop the local servers of this state dir (whatever the environment says); data stays."""
    for component in (LocalFerretDB(state_dir, progress=progress), LocalKafka(state_dir, progress=progress)):
        if component.is_running():
            component.stop(timeout=timeout)
        else:
            progress(f"{component.name}: not running")


def status(state_dir: Path | str | None = None) -> dict[str, ComponentStatus]:
    """Per component ("kafka", "mongodb"): mode, server, running, ready, pid, endpoint, log."""
    kafka_ext, mongo_ext = _external("KAFKA_BOOTSTRAP_SERVERS"), _external("MONGODB_URI")
    quiet: Progress = lambda _message: None  # noqa: E731
    return {
        "kafka": _external_status("kafka", kafka_ext) if kafka_ext else LocalKafka(state_dir, progress=quiet).status(),
        "mongodb": _external_status("mongodb", mongo_ext)
        if mongo_ext
        else LocalFerretDB(state_dir, progress=quiet).status(),
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
        description="Start, stop and inspect the local Kafka broker and FerretDB (no Docker needed).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    state_help = "state dir (default: $TRIAGE_STATE_DIR or <repo>/.triage)"
    p_up = commands.add_parser("up", help="provision and start what is not running; wait until ready")
    p_up.add_argument("--state-dir", type=Path, help=state_help)
    p_up.add_argument("--kafka-port", type=int, help="default: $TRIAGE_KAFKA_PORT or 9092")
    p_up.add_argument("--mongo-port", type=int, help="default: $TRIAGE_MONGO_PORT or 27017")
    p_up.add_argument("--timeout", type=float, default=DEFAULT_READY_TIMEOUT, help="readiness timeout, seconds")
    p_down = commands.add_parser("down", help="stop the local servers (data is kept)")
    p_down.add_argument("--state-dir", type=Path, help=state_help)
    p_status = commands.add_parser("status", help="show what runs; exit 0 only when everything is ready")
    p_status.add_argument("--state-dir", type=Path, help=state_help)
    p_status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)

    try:
        if args.command == "up":
            endpoints = up(args.state_dir, args.kafka_port, args.mongo_port, timeout=args.timeout)
            for key, value in endpoints.as_env().items():
                print(f"export {key}={value}")
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
