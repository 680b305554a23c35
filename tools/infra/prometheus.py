"""Prometheus from Debian's package (`make prometheus`), scraping the services of the local run and evaluating
the alert rules of deploy/prometheus/rules, as docker-compose's Prometheus does for the containers.

Its configuration is written into the state dir on every start, from deploy/prometheus/prometheus.yml's global
settings and rules; the services are found through one file per job in STATE/prometheus/targets, which
Prometheus re-reads when it changes: a run that had to start a service on another port (tools/processes.py)
writes the port it got there.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tools import paths
from tools.infra.component import DEFAULT_PROMETHEUS_PORT, DESK_API_PORTS, PIPELINE_PORTS, LocalComponent
from tools.infra.host import HOST, Progress, which

PROMETHEUS_DIR = paths.DEPLOY_DIR / "prometheus"
DEPLOYED_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES_DIR = PROMETHEUS_DIR / "rules"
INSTALL_HINT = "`make prometheus` installs Debian's prometheus package (or `apt-get install prometheus`)"


def job_name(service: str) -> str:
    """The scrape job of a service: its name in docker-compose.yml (desk_api → desk-api)."""
    return service.replace("_", "-")


def installed() -> bool:
    return shutil.which("prometheus") is not None


class LocalPrometheus(LocalComponent):
    """Prometheus with its data in STATE/prometheus/data, scraping the local run's services."""

    name = "prometheus"
    server = "prometheus"
    port_env = "TRIAGE_PROMETHEUS_PORT"
    external_env = ""  # an outside Prometheus would scrape an outside fleet: nothing to stand in for here
    default_port = DEFAULT_PROMETHEUS_PORT

    def __init__(
        self,
        state_dir: Path | str | None = None,
        port: int | None = None,
        *,
        cache_dir: Path | str | None = None,
        progress: Progress = print,
        services: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(state_dir, port, cache_dir=cache_dir, progress=progress)
        self.home = self.state_dir / "prometheus"
        self.data_dir = self.home / "data"
        self.config_file = self.home / "prometheus.yml"
        self.targets_dir = self.home / "targets"
        self.services = dict(services if services is not None else {**PIPELINE_PORTS, **DESK_API_PORTS})

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _marker(self) -> str:
        return str(self.state_dir / "prometheus" / "prometheus.yml")  # read by the base's __init__: no self.home yet

    def provision(self) -> None:
        which("prometheus", INSTALL_HINT)  # installed by apt-get, never downloaded here

    def accepting(self) -> bool:
        """Prometheus' own readiness: it answers /-/ready with 200 once its storage is open."""
        try:
            with urllib.request.urlopen(f"{self.endpoint}/-/ready", timeout=1) as reply:
                return bool(reply.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def config(self) -> dict[str, Any]:
        """docker-compose's global settings and rules; the local services as scrape jobs of their own."""
        deployed = yaml.safe_load(DEPLOYED_CONFIG.read_text(encoding="utf-8"))
        itself = {"job_name": "prometheus", "static_configs": [{"targets": [f"{HOST}:{self.port}"]}]}
        jobs: list[dict[str, Any]] = [itself]
        jobs += [{"job_name": job_name(service), "file_sd_configs": [{"files": [str(self._targets_file(service))]}]}
                 for service in self.services]
        return {
            "global": deployed["global"],
            "rule_files": [str(PROMETHEUS_DIR / pattern) for pattern in deployed["rule_files"]],
            "scrape_configs": jobs,
        }

    def _targets_file(self, service: str) -> Path:
        return self.targets_dir / f"{job_name(service)}.json"

    def write_targets(self, ports: Mapping[str, int | None]) -> None:
        """Point the scrape jobs of these services at their ports (None: not part of this run, not scraped, so
        not reported down); Prometheus notices the files change."""
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        for service, port in ports.items():
            if service not in self.services:
                continue  # no job was configured for it when this Prometheus started
            groups = [] if port is None else [{"targets": [f"{HOST}:{port}"], "labels": {}}]
            target = self._targets_file(service)
            partial = target.with_name(f".{target.name}.{os.getpid()}")  # renamed over: never read half written
            partial.write_text(json.dumps(groups) + "\n")
            partial.replace(target)

    def _prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(
            "# written by tools/infra/prometheus.py on every start; edits are lost\n"
            + yaml.safe_dump(self.config(), sort_keys=False),
            encoding="utf-8",
        )
        self.write_targets(self.services)

    def _command(self) -> list[str]:
        return [
            which("prometheus", INSTALL_HINT),
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address={HOST}:{self.port}",
            "--storage.tsdb.retention.time=7d",
        ]
