"""Grafana cannot run here, so its provisioned dashboards are checked as files: each is a dashboard Grafana can
load from deploy/grafana/dashboards, its panels ask the provisioned Prometheus data source, and every query (and
every alert rule) names a metric the code exports: shared/metrics.py's registry and FastStream's middleware,
with the suffixes Prometheus adds, or one of kafka-exporter's named below. A renamed metric fails here instead
of leaving a panel empty or an alert silent."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry

from shared.metrics import REGISTRY

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
PROVISIONING = DEPLOY / "grafana" / "provisioning"
RULES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))

# danielqsj/kafka-exporter's metrics (docker-compose.yml), and what Prometheus records of every scrape itself.
KAFKA_EXPORTER = {
    "kafka_brokers", "kafka_topic_partitions", "kafka_topic_partition_current_offset",
    "kafka_topic_partition_oldest_offset", "kafka_consumergroup_current_offset",
    "kafka_consumergroup_current_offset_sum", "kafka_consumergroup_lag", "kafka_consumergroup_lag_sum",
    "kafka_consumergroup_members",
}
SCRAPE = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
PANEL_TYPES = {"row", "timeseries", "stat", "bargauge", "gauge", "table", "text"}
SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("", "_sum", "_count", "_created"), "info": ("_info",)}


def exported(registry: CollectorRegistry) -> set[str]:
    """The names a scrape of this registry shows: prometheus_client keeps a counter's family name without
    `_total` and adds the suffixes when it exposes the samples."""
    return {family.name + suffix for family in registry.collect() for suffix in SUFFIXES[family.type]}


def faststream_metrics() -> set[str]:
    registry = CollectorRegistry()
    KafkaPrometheusMiddleware(registry=registry, app_name="names")  # registers its metrics at once
    return exported(registry)


KNOWN = exported(REGISTRY) | faststream_metrics() | KAFKA_EXPORTER | SCRAPE

# What PromQL writes that is not a metric name: functions and aggregations (always before a parenthesis, dropped
# below), keywords, and the modifiers whose parentheses hold label names.
KEYWORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}
LABEL_LISTS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana query with $variables) reads."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # strings: label values, regexes
    text = re.sub(r"\$\{[^}]*\}|\$\w+", "1", text)  # Grafana's variables ($unit, $__rate_interval, ${x})
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = LABEL_LISTS.sub("", text)
    text = re.sub(r"\boffset\s+\w+", "", text)
    text = re.sub(r"\blabel_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*\w+\s*\)", r"\1", text)  # a variable's query
    names = set(re.findall(r"(?<![\w.])([a-zA-Z_:][\w:]*)\b(?!\s*\()", text))
    return {name for name in names if name.lower() not in KEYWORDS and not re.fullmatch(r"\d+\w*", name)}


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, expression) of every panel target and every query variable."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel.get('title')!r} {target.get('refId')}", target.get("expr", "")
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            yield f"variable {variable['name']}", query["query"] if isinstance(query, dict) else query


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # a collapsed row keeps its panels inside


def unknown_metrics(dashboard: dict[str, Any]) -> dict[str, set[str]]:
    found = {where: metric_names(expr) - KNOWN for where, expr in queries(dashboard)}
    return {where: names for where, names in found.items() if names}


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def provisioned_datasource_uid() -> str:
    sources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text(encoding="utf-8"))
    [source] = sources["datasources"]
    assert source["type"] == "prometheus"
    return str(source["uid"])


# --------------------------------------------------------------------------------------------- the names


def test_the_names_known_are_those_a_scrape_shows() -> None:
    assert {"triage_dead_letters_total", "triage_stage_seconds_bucket", "triage_supervisor_rate",
            "triage_consumer_lag", "faststream_received_processed_messages_total",
            "faststream_received_processed_messages_duration_seconds_bucket"} <= KNOWN
    assert "triage_dead_letters" not in KNOWN and "triage_stage_seconds_total" not in KNOWN


@pytest.mark.parametrize(("expr", "names"), [
    ('sum by (service, reason) (increase(triage_dead_letters_total{service=~"$service"}[$__rate_interval]))',
     {"triage_dead_letters_total"}),
    ("histogram_quantile(0.99, sum by (le, app_name) (rate(faststream_received_processed_messages_duration_seconds"
     "_bucket[5m])))", {"faststream_received_processed_messages_duration_seconds_bucket"}),
    ("time() - (triage_timer_scan_last_success_timestamp_seconds > 0) > 300",
     {"triage_timer_scan_last_success_timestamp_seconds"}),
    ("(a unless b offset 5m) and on (job, instance) up offset 5m == bool 1", {"a", "b", "up"}),
    ('label_values(triage_supervisor_cases, unit)', {"triage_supervisor_cases"}),
    ('sum(x{figure=~"response|on_time", route="/desk/{case_id}"}) / ignoring(figure) group_left y', {"x", "y"}),
])
def test_the_metric_names_of_an_expression(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


# --------------------------------------------------------------------------------------------- dashboards


def test_there_are_the_supervisors_and_the_services_dashboards() -> None:
    titles = {load(path)["title"] for path in DASHBOARDS}
    assert titles == {"督导数据 / supervisors' figures", "服务 / services"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_a_dashboard_is_one_grafana_provisions(path: Path) -> None:
    dashboard = load(path)
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", dashboard["uid"])
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert dashboard.get("id") is None  # a provisioned dashboard gets its id from Grafana
    assert dashboard["panels"]
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    uid = provisioned_datasource_uid()
    for panel in panels(dashboard):
        assert panel["type"] in PANEL_TYPES, panel["title"]
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= grid.keys() and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            assert not panel.get("targets"), f"row {panel['title']!r} has queries"
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} asks nothing"
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"]) == panel["datasource"]
            assert target["expr"].strip(), panel["title"]
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"] == {"type": "prometheus", "uid": uid}


def test_the_dashboards_do_not_share_a_uid_or_a_title() -> None:
    boards = [load(path) for path in DASHBOARDS]
    assert len({board["uid"] for board in boards}) == len({board["title"] for board in boards}) == len(boards)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_every_panel_asks_for_metrics_the_code_exports(path: Path) -> None:
    assert unknown_metrics(load(path)) == {}


def test_a_panel_naming_an_unknown_metric_fails() -> None:
    dashboard = load(DASHBOARDS[0])
    first = next(panel for panel in panels(dashboard) if panel.get("targets"))
    first["targets"].append({"refId": "Z", "expr": 'sum(rate(triage_dead_letter_total{service="intake"}[5m]))'})
    dashboard["templating"]["list"].append(
        {"name": "typo", "type": "query", "query": {"query": "label_values(triage_supervisor_case, unit)"}})

    assert unknown_metrics(dashboard) == {f"panel {first['title']!r} Z": {"triage_dead_letter_total"},
                                          "variable typo": {"triage_supervisor_case"}}


def test_the_supervisors_dashboard_shows_every_figure() -> None:
    """The figures of the brief's table, as the gauges name them."""
    [board] = [load(path) for path in DASHBOARDS if load(path)["uid"] == "triage-supervisors"]
    exprs = " ".join(expr for _where, expr in queries(board))
    rates = set(re.findall(r'triage_supervisor_rate\{figure="(\w+)"', exprs))
    counts = set(re.findall(r'triage_supervisor_cases\{figure="(\w+)"', exprs))
    assert rates == {"response", "resolution", "satisfaction", "on_time", "visited", "repeats", "handed_back",
                     "reopened", "mediation_success"}
    assert counts == {"received", "routed", "resolved", "overdue_open", "overdue_new", "escalated"}


# --------------------------------------------------------------------------------------------- provisioning


def test_the_dashboards_provider_reads_the_folder_compose_mounts() -> None:
    config = yaml.safe_load((PROVISIONING / "dashboards" / "triage.yml").read_text(encoding="utf-8"))
    assert config["apiVersion"] == 1
    [provider] = config["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "/etc/grafana/dashboards"
    compose = yaml.safe_load((DEPLOY.parent / "docker-compose.yml").read_text(encoding="utf-8"))
    assert "./deploy/grafana/dashboards:/etc/grafana/dashboards:ro" in compose["services"]["grafana"]["volumes"]


# --------------------------------------------------------------------------------------------- alert rules


def test_every_alert_rule_reads_metrics_the_code_exports() -> None:
    exprs = {rule.get("alert") or rule["record"]: rule["expr"]
             for path in RULES for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
             for rule in group["rules"]}
    assert exprs
    unknown = {name: metric_names(expr) - KNOWN for name, expr in exprs.items()}
    assert {name: names for name, names in unknown.items() if names} == {}
