"""Run the services as child processes, the way they are deployed: one process each."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tools import infra, paths

# The pipeline in event order, with the port each serves /health and /metrics on (named in tools/infra, whose
# Prometheus scrapes them).
PIPELINE: dict[str, int] = dict(infra.PIPELINE_PORTS)
WITH_DESK_API: dict[str, int] = dict(infra.DESK_API_PORTS)
WITH_OPEN311: dict[str, int] = dict(infra.OPEN311_PORTS)


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the process that started us dies (Linux), so a killed
    `triage` or test run leaves no service behind."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


@dataclass
class ServiceProcess:
    name: str
    port: int
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def command(self) -> list[str]:
        # The desk API and the Open311 gateway are plain ASGI; the pipeline services are FastStream apps.
        runner = ["uvicorn"] if self.name in ("desk_api", "open311") else ["faststream", "run"]
        return [sys.executable, "-m", *runner, f"services.{self.name}.main:app",
                "--host", "127.0.0.1", "--port", str(self.port)]

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command,
            cwd=paths.REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def stop(self, kill: bool = False, timeout: float = 15.0) -> None:
        if not self.running:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def service_env(kafka: str, mongodb: str, **extra: str) -> dict[str, str]:
    """The services' environment; the desk API serves the browser libraries `triage assets` put in place
    (unless DESK_ASSETS_DIR already names a dir)."""
    env = dict(os.environ)
    env.setdefault("DESK_ASSETS_DIR", str(paths.ASSETS_DIR))
    env.update({"KAFKA_BOOTSTRAP_SERVERS": kafka, "MONGODB_URI": mongodb, "PYTHONUNBUFFERED": "1", **extra})
    return env


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _any_free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Fleet:
    """A set of service processes started and stopped together. A port already taken (another run on
    this machine) is swapped for a free one, so a health check never answers for someone else's process."""

    def __init__(self, env: dict[str, str], log_dir: Path, names: dict[str, int] | None = None) -> None:
        self.services = {
            name: ServiceProcess(name, port if _free(port) else _any_free_port(), log_dir / f"{name}.log", env)
            for name, port in (names or PIPELINE).items()
        }

    def __getitem__(self, name: str) -> ServiceProcess:
        return self.services[name]

    def start(self, timeout: float = 90.0) -> None:
        for service in self.services.values():
            service.start()
        self.wait_healthy(timeout)
        print("  " + ", ".join(f"{s.name} :{s.port}" for s in self.services.values()), flush=True)

    def wait_healthy(self, timeout: float = 90.0, names: list[str] | None = None) -> None:
        deadline = time.monotonic() + timeout
        pending = [self.services[n] for n in (names or list(self.services))]
        while pending:
            for service in list(pending):
                if not service.running:
                    raise RuntimeError(f"{service.name} exited:\n{service.log_tail()}")
                if service.healthy():
                    pending.remove(service)
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"{pending[0].name} not healthy after {timeout}s:\n{pending[0].log_tail()}")
            time.sleep(0.3)

    def stop(self) -> None:
        for service in self.services.values():
            if service.running and service.process is not None:
                service.process.send_signal(signal.SIGTERM)
        for service in self.services.values():
            service.stop()


def start_pipeline(
    extra_env: dict[str, str] | None = None, services: dict[str, int] | None = None
) -> tuple[infra.Endpoints, Fleet]:
    """The local infrastructure (unless endpoints are configured) and the services, started and healthy; the
    local Prometheus (when installed) scrapes them on the ports they got."""
    endpoints = infra.up(monitor=True)
    print(f"kafka {endpoints.kafka_bootstrap}, mongodb {endpoints.mongodb_uri}", flush=True)
    # A fleet the tools start is a development fleet: its services may use the development secrets.
    env = {"DEV_MODE": "true", **(extra_env or {})}
    fleet = Fleet(service_env(endpoints.kafka_bootstrap, endpoints.mongodb_uri, **env),
                  infra.default_state_dir() / "logs", services)
    print("starting services: " + ", ".join(fleet.services), flush=True)
    try:
        fleet.start()
    except BaseException:
        fleet.stop()
        raise
    if endpoints.prometheus_url:  # this run's services where they listen; the others are not this run's
        infra.LocalPrometheus(progress=lambda _m: None).write_targets(
            {**dict.fromkeys({**PIPELINE, **WITH_DESK_API, **WITH_OPEN311}),
             **{name: s.port for name, s in fleet.services.items()}})
        print(f"prometheus {endpoints.prometheus_url} scrapes them; alerts at {endpoints.prometheus_url}/alerts",
              flush=True)
    return endpoints, fleet
