"""A local server process owned by a state dir, and the settings every component reads.

Pid files, logs and data live in the state dir (TRIAGE_STATE_DIR, default <repo>/.triage); what the
servers run from lives in a cache dir shared by every state dir (TRIAGE_CACHE_DIR, default
~/.cache/grievance-triage), so tests with throw-away state dirs neither download nor build again.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, TypedDict

from tools import paths
from tools.infra.host import (
    CHILDREN,
    HOST,
    InfraError,
    Progress,
    command_line,
    flock,
    pid_alive,
    port_bindable,
    port_open,
    read_tail,
)

DEFAULT_KAFKA_PORT = 9092
DEFAULT_MONGO_PORT = 27017
# Not Prometheus' usual 9090: on a machine with systemd, Debian's package runs its own Prometheus there.
DEFAULT_PROMETHEUS_PORT = 9190
# The ports the local run's services serve /health and /metrics on (tools/processes.py starts them there; the
# local Prometheus scrapes them there until the run says otherwise).
PIPELINE_PORTS = {"intake": 8101, "classification": 8102, "routing": 8103, "followup": 8104, "feed": 8105}
DESK_API_PORTS = {"desk_api": 8180}
OPEN311_PORTS = {"open311": 8190}  # the Open311 GeoReport v2 gateway
DEFAULT_READY_TIMEOUT = 120.0
DEFAULT_STOP_TIMEOUT = 30.0
_LOG_ROTATE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap: str
    mongodb_uri: str
    prometheus_url: str | None = None  # a local Prometheus, when one was asked for and is installed

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
    return Path(env).expanduser().resolve() if env else paths.STATE_DIR


def default_cache_dir() -> Path:
    if env := os.environ.get("TRIAGE_CACHE_DIR"):
        return Path(env).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "grievance-triage"


def env_port(name: str, default: int) -> int:
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


def external_endpoint(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


# --------------------------------------------------------------------------- components


class LocalComponent:
    """A server process owned by a state dir: pid file in STATE/run, output in STATE/logs."""

    name: str  # per instance for the nodes of a cluster (kafka-1, kafka-2, ...)
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
        self.port = port if port is not None else self._recorded_port() or env_port(self.port_env, self.default_port)

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
        if pid is not None and pid_alive(pid):
            cmdline = command_line(pid)
            # A recycled pid (after a reboot) belongs to some other program: not ours.
            if cmdline is None or self._marker() in cmdline:
                return pid
        if self.pid_file.exists():
            self._clear_run_files()
        return None

    def is_running(self) -> bool:
        return self.pid() is not None

    def is_ready(self) -> bool:
        return self.is_running() and self.accepting()

    def accepting(self) -> bool:
        """The readiness probe: the port accepts connections (a server with a readiness endpoint asks it)."""
        return port_open(HOST, self.port)

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
        return read_tail(self.log_file, lines, self._log_offset)

    # -- lifecycle
    def start(self, *, wait: bool = True, timeout: float = DEFAULT_READY_TIMEOUT) -> None:
        """Start the process unless it already runs; with wait, block until its port accepts."""
        with flock(self._lock_file):
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
                if not port_bindable(self.port):
                    existing = f", or use an existing server ({self.external_env}=...)" if self.external_env else ""
                    raise InfraError(
                        f"port {self.port} on {HOST} is in use by a process that triage did not start "
                        f"for {self.state_dir}; stop it or choose another port ({self.port_env}=...){existing}"
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
        CHILDREN[proc.pid] = proc
        self._started_at = time.monotonic()
        self.pid_file.write_text(f"{proc.pid}\n")
        self.port_file.write_text(f"{self.port}\n")
        self.progress(f"{self.name}: started pid {proc.pid} on {self.endpoint} (log {self.log_file})")

    def wait_ready(self, timeout: float = DEFAULT_READY_TIMEOUT) -> None:
        """Block until the server is ready (`accepting`); fail early if the process dies."""
        deadline = time.monotonic() + timeout
        while True:
            pid = self.pid()
            if pid is None:
                raise InfraError(
                    f"{self.name} is not running (it exited or was never started) and does not listen on "
                    f"{HOST}:{self.port}; last lines of {self.log_file}:\n{self.log_tail()}"
                )
            if self.accepting():
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
        with flock(self._lock_file):
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
            CHILDREN.pop(pid, None)
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
        while pid_alive(pid):
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
            ready=pid is not None and self.accepting(),
            pid=pid,
            endpoint=self.endpoint,
            log=str(self.log_file),
        )
