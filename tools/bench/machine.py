"""The machine the benchmark runs on and the processes it watches: CPU and memory from /proc, the services'
figures from their /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import time
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.bench.figures import parse_cpu_seconds, parse_metrics, parse_vmrss_kb

if TYPE_CHECKING:
    from tools.processes import Fleet


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"cores": os.cpu_count()}
    with contextlib.suppress(OSError, AttributeError):
        info["usable_cores"] = len(os.sched_getaffinity(0))
    with contextlib.suppress(OSError, StopIteration):
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                           if line.startswith("model name"))
    with contextlib.suppress(OSError, StopIteration, ValueError):
        kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
        info["mem_gb"] = round(kb / 1024 / 1024, 1)
    with contextlib.suppress(OSError):
        info["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    info["python"] = platform.python_version()
    info["kernel"] = platform.release()
    return info


def rss_mb(pid: int) -> float | None:
    try:
        kb = parse_vmrss_kb(Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return None
    return round(kb / 1024, 1) if kb is not None else None


def cpu_seconds(pid: int) -> float | None:
    try:
        return parse_cpu_seconds(Path(f"/proc/{pid}/stat").read_text(), os.sysconf("SC_CLK_TCK"))
    except (OSError, IndexError, ValueError):
        return None


def infra_pids() -> dict[str, int]:
    """The local Kafka broker's and FerretDB's pids, when this state dir runs them."""
    from tools import infra

    pids: dict[str, int] = {}
    quiet: infra.Progress = lambda _message: None  # noqa: E731
    for env, component in (("KAFKA_BOOTSTRAP_SERVERS", infra.LocalKafka), ("MONGODB_URI", infra.LocalFerretDB)):
        if os.environ.get(env, "").strip():
            continue
        with contextlib.suppress(Exception):
            pid = component(progress=quiet).pid()
            if pid is not None:
                pids[component.name] = pid
    return pids


class Processes:
    """The processes whose CPU and memory the benchmark reads: the services, the servers, and itself."""

    def __init__(self, services: Mapping[str, tuple[int, int]], servers: Mapping[str, int]) -> None:
        self.services = dict(services)  # name → (pid, metrics port)
        self.pids = {name: pid for name, (pid, _port) in services.items()} | dict(servers)
        self.pids["bench"] = os.getpid()

    @classmethod
    def of(cls, fleet: Fleet | None) -> Processes:
        services = {} if fleet is None else {
            name: (service.process.pid, service.port)
            for name, service in fleet.services.items() if service.process is not None
        }
        return cls(services, infra_pids())

    def cpu(self, names: Iterable[str] | None = None) -> dict[str, float]:
        readings = {name: cpu_seconds(self.pids[name]) for name in (names or self.pids) if name in self.pids}
        return {name: value for name, value in readings.items() if value is not None}

    def rss(self) -> dict[str, float | None]:
        return {name: rss_mb(pid) for name, (pid, _port) in self.services.items()}

    def handled(self) -> dict[str, float]:
        """Events each service has finished with, from its triage_stage_seconds count."""
        return {name: samples.get(f'triage_stage_seconds_count{{service="{name}"}}', 0.0)
                for name, samples in self.metrics().items()}

    async def wait_quiet(self, quiet_s: float = 3.0, timeout: float = 600.0) -> float:
        """Until no service has finished an event for `quiet_s`: the backlog behind the measured stage (the
        follow-up's) drained. Returns the wall-clock milliseconds of the last event finished."""
        last = await asyncio.to_thread(self.handled)
        last_move = time.time() * 1000
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            now = await asyncio.to_thread(self.handled)
            if now != last:
                last, last_move = now, time.time() * 1000
            elif time.time() * 1000 - last_move >= quiet_s * 1000:
                break
        return last_move

    def metrics(self) -> dict[str, dict[str, float]]:
        scraped = {}
        for name, (_pid, port) in self.services.items():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                    scraped[name] = parse_metrics(reply.read().decode())
            except OSError:
                scraped[name] = {}
        return scraped


