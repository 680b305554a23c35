"""docker-compose.yml cannot run here (no Docker), so it is kept in step with the code by parsing it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.infra import ClusterLayout, KafkaNode, LocalKafka

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
PROMETHEUS_FILE = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_DIR = REPO_ROOT / "deploy" / "grafana"

# Broker settings that differ between a container and a local process by nature.
MACHINE_SPECIFIC = {
    "controller.quorum.voters",
    "listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "log.dirs",
}


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def service_packages() -> list[str]:
    """Packages under services/ whose main.py defines a module-level `app`, or builds it when asked through
    a module `__getattr__` as the desk API does."""
    found = []
    for main in sorted((REPO_ROOT / "services").glob("*/main.py")):
        if re.search(r"^app\s*(:[^=\n]*)?=|^def __getattr__\(", main.read_text(encoding="utf-8"), re.MULTILINE):
            found.append(main.parent.name)
    return found


COMPOSE = _load(COMPOSE_FILE)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
BUILT = {name: spec for name, spec in SERVICES.items() if "build" in spec}


def _command(spec: dict[str, Any]) -> str:
    command = spec.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def _port(spec: dict[str, Any]) -> int:
    match = re.search(r"--port[ =](\d+)", _command(spec))
    assert match, f"no --port in {_command(spec)!r}"
    return int(match.group(1))


def test_the_pipeline_services_are_discovered() -> None:
    assert {"intake", "classification", "routing", "followup"} <= set(service_packages())


@pytest.mark.parametrize("package", service_packages())
def test_compose_runs_every_service_package(package: str) -> None:
    name = package.replace("_", "-")
    assert name in SERVICES, f"docker-compose.yml has no service {name!r} for services/{package}"
    assert f"services.{package}.main:app" in _command(SERVICES[name])


@pytest.mark.parametrize("name", sorted(BUILT))
def test_every_built_service_runs_a_module_that_exists(name: str) -> None:
    match = re.search(r"services\.(\w+)\.main:app", _command(BUILT[name]))
    assert match, f"{name} runs no services.<package>.main:app"
    module = REPO_ROOT / "services" / match.group(1) / "main.py"
    assert module.is_file(), f"docker-compose.yml service {name} runs {match.group(0)}, but {module} is missing"


def test_faststream_apps_are_served_by_faststream_run() -> None:
    for package in service_packages():
        spec = SERVICES.get(package.replace("_", "-"), {})
        command = spec.get("command", [])
        if "faststream" in _command(spec):
            assert command[:2] == ["faststream", "run"]
            assert "--host" in command and "0.0.0.0" in command


@pytest.mark.parametrize("name", sorted(BUILT))
def test_services_are_built_from_the_shared_dockerfile_and_reach_kafka_and_mongo(name: str) -> None:
    spec = BUILT[name]
    assert spec["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (REPO_ROOT / spec["build"].get("context", ".") / "deploy" / "Dockerfile").is_file()
    assert spec["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert spec["environment"]["MONGODB_URI"] == "mongodb://mongo:27017"
    assert spec["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert spec["depends_on"]["mongo"]["condition"] == "service_healthy"
    assert str(_port(spec)) in " ".join(spec["healthcheck"]["test"])


def test_the_dockerfile_is_python_3_11_slim() -> None:
    dockerfile = (REPO_ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.MULTILINE)


def test_images_are_the_official_ones() -> None:
    assert "bitnami" not in COMPOSE_FILE.read_text(encoding="utf-8").lower()
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:3.9")
    assert SERVICES["mongo"]["image"].startswith("mongo:8")
    assert SERVICES["prometheus"]["image"].startswith("prom/prometheus")
    assert SERVICES["grafana"]["image"].startswith("grafana/grafana")
    assert SERVICES["kafka-exporter"]["image"].startswith("danielqsj/kafka-exporter")
    assert "healthcheck" in SERVICES["kafka"]
    assert "healthcheck" in SERVICES["mongo"]


def test_the_kafka_container_is_configured_like_the_local_broker() -> None:
    environment = SERVICES["kafka"]["environment"]
    local = LocalKafka("/nonexistent-state", 9092, cache_dir="/nonexistent-cache").broker_properties()
    for key, value in local.items():
        if key in MACHINE_SPECIFIC:
            continue
        env_key = "KAFKA_" + key.upper().replace(".", "_")
        assert env_key in environment, f"docker-compose.yml does not set {env_key} ({key}={value} locally)"
        assert str(environment[env_key]).lower() == value.lower(), key


CLUSTER_FILE = REPO_ROOT / "deploy" / "kafka" / "compose.cluster.yml"
NODE_SPECIFIC = {"KAFKA_NODE_ID", "KAFKA_LISTENERS", "KAFKA_ADVERTISED_LISTENERS"}


def test_the_three_kafka_containers_are_configured_like_the_local_cluster() -> None:
    """deploy/kafka/compose.cluster.yml, laid over docker-compose.yml, makes the local cluster's three nodes."""
    override = _load(CLUSTER_FILE)["services"]
    nodes = {1: {**SERVICES["kafka"]["environment"], **override["kafka"]["environment"]},
             2: override["kafka-2"]["environment"], 3: override["kafka-3"]["environment"]}
    layout = ClusterLayout("id", (9092, 9093, 9094), (9095, 9096, 9097))
    local = KafkaNode(layout, 1, "/nonexistent-state", cache_dir="/nonexistent-cache").broker_properties()
    for node, environment in nodes.items():
        assert environment["KAFKA_NODE_ID"] == node
        assert environment["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093"
        for key, value in local.items():
            env_key = "KAFKA_" + key.upper().replace(".", "_")
            if key not in MACHINE_SPECIFIC and env_key not in NODE_SPECIFIC:
                assert str(environment.get(env_key)).lower() == value.lower(), f"kafka node {node}: {key}"
        others = {k: v for k, v in environment.items() if k not in NODE_SPECIFIC}
        assert others == {k: v for k, v in nodes[1].items() if k not in NODE_SPECIFIC}, f"kafka node {node}"
    assert override["kafka-2"]["image"] == override["kafka-3"]["image"] == SERVICES["kafka"]["image"]


def _secret(name: str) -> bool:
    return any(word in name for word in ("SECRET", "TOKEN", "PASSWORD", "KEY"))


def test_no_secret_has_a_default_in_compose() -> None:
    """A default in a public file is a known secret: compose must refuse to start without the real one."""
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    references = re.findall(r"\$\{(\w+)(:?[-?+])?([^}]*)\}", text)
    secrets = {name: operator for name, operator, _rest in references if _secret(name)}
    assert {"COMPLAINANT_KEY_SECRET", "DESK_TOKENS", "OPEN311_KEYS", "GRAFANA_ADMIN_PASSWORD"} <= set(secrets)
    defaulted = sorted(name for name, operator in secrets.items() if operator != ":?")
    assert not defaulted, f"docker-compose.yml gives these secrets a default or lets them be empty: {defaulted}"
    for spec in SERVICES.values():
        environment = spec.get("environment", {})
        for key, value in environment.items() if isinstance(environment, dict) else ():
            if _secret(key):
                assert str(value).startswith("${"), f"{key} is written into docker-compose.yml"
        assert "DEV_MODE" not in environment, "a deployment never runs in development mode"


@pytest.mark.parametrize("name", sorted(BUILT))
def test_every_built_service_is_given_the_complainant_key(name: str) -> None:
    assert BUILT[name]["environment"]["COMPLAINANT_KEY_SECRET"].startswith("${COMPLAINANT_KEY_SECRET:?")


@pytest.mark.parametrize("name", ["intake", "desk-api"])
def test_the_services_that_read_or_write_personal_data_are_given_the_master_key(name: str) -> None:
    assert SERVICES[name]["environment"]["ENCRYPTION_MASTER_KEY"].startswith("${ENCRYPTION_MASTER_KEY:?")


@pytest.mark.parametrize("name", ["classification", "routing", "followup", "feed", "open311"])
def test_the_services_that_never_see_personal_data_are_not_given_the_master_key(name: str) -> None:
    assert "ENCRYPTION_MASTER_KEY" not in SERVICES[name].get("environment", {})


def test_the_desk_api_is_given_its_tokens() -> None:
    assert SERVICES["desk-api"]["environment"]["DESK_TOKENS"].startswith("${DESK_TOKENS:?")


def test_the_open311_gateway_is_given_its_keys() -> None:
    assert SERVICES["open311"]["environment"]["OPEN311_KEYS"].startswith("${OPEN311_KEYS:?")


def test_prometheus_scrapes_every_service() -> None:
    targets = {
        target
        for job in _load(PROMETHEUS_FILE)["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    missing = {f"{name}:{_port(spec)}" for name, spec in BUILT.items()} - targets
    assert not missing, f"deploy/prometheus/prometheus.yml does not scrape {sorted(missing)}"
    mounted = " ".join(SERVICES["prometheus"]["volumes"])
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounted


def test_prometheus_scrapes_the_kafka_exporter() -> None:
    """The maintained exporter (danielqsj/kafka-exporter, not the archived kafka-lag-exporter) on its port."""
    exporter = SERVICES["kafka-exporter"]
    assert exporter["image"].startswith("danielqsj/kafka-exporter:v1.")
    assert "--kafka.server=kafka:9092" in exporter["command"]
    assert exporter["depends_on"]["kafka"]["condition"] == "service_healthy"
    jobs = {job["job_name"]: job for job in _load(PROMETHEUS_FILE)["scrape_configs"]}
    assert jobs["kafka-exporter"]["static_configs"][0]["targets"] == ["kafka-exporter:9308"]


def test_prometheus_loads_the_alert_rules_where_the_compose_file_mounts_them() -> None:
    """rule_files are relative to the configuration: deploy/prometheus/rules here, /etc/prometheus/rules there."""
    config = _load(PROMETHEUS_FILE)
    assert config["rule_files"] == ["rules/*.yml"]
    assert list((PROMETHEUS_FILE.parent / "rules").glob("*.yml"))
    assert "./deploy/prometheus/rules:/etc/prometheus/rules:ro" in SERVICES["prometheus"]["volumes"]


def test_grafana_is_provisioned_from_deploy_grafana() -> None:
    volumes = SERVICES["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in volumes
    assert "./deploy/grafana/dashboards:/etc/grafana/dashboards:ro" in volumes
    providers = _load(GRAFANA_DIR / "provisioning" / "dashboards" / "triage.yml")["providers"]
    assert [provider["options"]["path"] for provider in providers] == ["/etc/grafana/dashboards"]
    sources = _load(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert [(source["type"], source["url"]) for source in sources] == [("prometheus", "http://prometheus:9090")]
