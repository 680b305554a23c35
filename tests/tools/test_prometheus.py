"""The local Prometheus of `triage infra up`: Debian's prometheus, started in a throw-away state dir on a free
port, loads the alert rules of deploy/prometheus/rules and scrapes every service of the local run, on the ports
the run got. Kafka and FerretDB are pointed elsewhere (a refused address), so only Prometheus starts."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from tools import infra
from tools.infra import prometheus

T = TypeVar("T")
SERVICES = {**infra.PIPELINE_PORTS, **infra.DESK_API_PORTS}
JOBS = {"prometheus", "intake", "classification", "routing", "followup", "feed", "desk-api"}

needs_prometheus = pytest.mark.skipif(
    shutil.which("prometheus") is None and not os.environ.get("CI"),
    reason="prometheus is not installed: `make prometheus` installs Debian's package",
)


def alerts_in_the_rules() -> set[str]:
    return {rule["alert"] for path in prometheus.RULES_DIR.glob("*.yml")
            for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"] for rule in group["rules"]
            if "alert" in rule}


@pytest.fixture
def elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kafka and the store are someone else's (refused at once): `up` starts Prometheus alone."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{infra.free_port()}")
    monkeypatch.setenv("MONGODB_URI", f"mongodb://127.0.0.1:{infra.free_port()}")


@dataclass(frozen=True)
class Running:
    state_dir: Path
    url: str


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    state_dir = tmp_path_factory.mktemp("prometheus-state")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{infra.free_port()}")
        mp.setenv("MONGODB_URI", f"mongodb://127.0.0.1:{infra.free_port()}")
        try:
            endpoints = infra.up(state_dir, monitor=True, prometheus_port=infra.free_port(), timeout=30)
            assert endpoints.prometheus_url is not None
            yield Running(state_dir, endpoints.prometheus_url)
        finally:
            infra.down(state_dir)


def api(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as reply:
        body = json.load(reply)
    assert body["status"] == "success", body
    return body["data"]


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 20.0) -> T:
    """Prometheus' discovery hands new targets to the scrapers at most every 5 seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout:.0f}s")
        time.sleep(0.25)


def scrape_urls(url: str) -> dict[str, str]:
    return {target["labels"]["job"]: target["scrapeUrl"]
            for target in api(f"{url}/api/v1/targets?state=any")["activeTargets"]}


@needs_prometheus
def test_the_rules_are_loaded(running: Running) -> None:
    groups = api(f"{running.url}/api/v1/rules")["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"] if rule["type"] == "alerting"}
    assert loaded == alerts_in_the_rules()
    assert {Path(group["file"]).parent for group in groups} == {prometheus.RULES_DIR}


@needs_prometheus
def test_every_service_of_the_local_run_is_a_target(running: Running) -> None:
    def every_job() -> dict[str, str] | None:
        urls = scrape_urls(running.url)
        return urls if set(urls) == JOBS else None

    urls = eventually(every_job, "targets of every job")
    expected = {prometheus.job_name(name): f"http://127.0.0.1:{port}/metrics" for name, port in SERVICES.items()}
    assert {job: url for job, url in urls.items() if job != "prometheus"} == expected
    assert infra.status(running.state_dir)["prometheus"]["ready"] is True


@needs_prometheus
def test_a_run_s_services_are_scraped_where_they_listen_and_no_others(running: Running) -> None:
    """A service the run had to start on another port is scraped there; one the run has not (`triage demo` has no
    desk API) is not scraped, so not reported down."""
    moved = infra.free_port()
    infra.LocalPrometheus(running.state_dir, progress=lambda _m: None).write_targets(
        {"routing": moved, "desk_api": None})

    def changed() -> bool:
        urls = scrape_urls(running.url)
        return urls.get("routing") == f"http://127.0.0.1:{moved}/metrics" and "desk-api" not in urls

    eventually(changed, "routing on its new port and no desk-api")


@needs_prometheus
def test_every_dashboard_query_is_promql_prometheus_accepts(running: Running) -> None:
    """Grafana cannot run here; the Prometheus it would ask can, and parses each panel's query."""
    grafana = {"$__rate_interval": "1m", "$__range": "1h", "$unit": ".*", "$service": ".*"}
    dashboards = sorted((prometheus.PROMETHEUS_DIR.parent / "grafana" / "dashboards").glob("*.json"))
    exprs = [target["expr"] for path in dashboards
             for panel in json.loads(path.read_text(encoding="utf-8"))["panels"] for target in panel.get("targets", [])]
    assert exprs
    for expr in exprs:
        for variable, value in grafana.items():
            expr = expr.replace(variable, value)
        query = urllib.parse.urlencode({"query": expr})
        try:
            api(f"{running.url}/api/v1/query?{query}")
        except urllib.error.HTTPError as error:
            pytest.fail(f"Prometheus refuses {expr!r}: {error.read().decode()}")


@needs_prometheus
def test_down_stops_it_and_the_infrastructure_stays_ready_without_it(running: Running, elsewhere: None) -> None:
    messages: list[str] = []
    infra.down(running.state_dir, progress=messages.append)

    assert any(message.startswith("prometheus: stopped") for message in messages)
    status = infra.status(running.state_dir)["prometheus"]
    assert (status["running"], status["ready"]) == (False, None)  # optional: not counted against readiness


# The tests below start no server.


def test_the_configuration_keeps_the_deployed_one_s_global_settings_and_rules(tmp_path: Path) -> None:
    local = infra.LocalPrometheus(tmp_path, 19190, progress=lambda _m: None)
    deployed = yaml.safe_load(prometheus.DEPLOYED_CONFIG.read_text(encoding="utf-8"))
    config = local.config()

    assert config["global"] == deployed["global"]
    assert [Path(pattern).parent for pattern in config["rule_files"]] == [prometheus.RULES_DIR]
    assert {job["job_name"] for job in config["scrape_configs"]} == JOBS


def test_without_prometheus_installed_up_says_so_and_starts_nothing(
        tmp_path: Path, elsewhere: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tools.infra.control.installed", lambda: False)
    messages: list[str] = []

    endpoints = infra.up(tmp_path, monitor=True, progress=messages.append)

    assert endpoints.prometheus_url is None
    assert any("prometheus: not installed" in message and "make prometheus" in message for message in messages)
    assert not (tmp_path / "run").exists()
