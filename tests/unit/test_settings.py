"""One Settings for every service; outside DEV_MODE no service starts with a public or missing secret."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from services.desk_api.main import create_app
from shared.config import DEV_COMPLAINANT_KEY, ConfigurationRefused, Settings, get_settings, refuse_unsafe
from shared.domain.triage import Unit
from shared.runtime import Service

REPO_ROOT = Path(__file__).resolve().parents[2]
STRONG_KEY = SecretStr("9c1f0e7b2a64d8355e1b7f02ca9d46e8")
TOKENS = {"desk-token-police-5b1e9a7c": Unit.POLICE}
MASTER_KEY = base64.b64encode(bytes(range(96))).decode()
SECRET_ENV = ("DEV_MODE", "COMPLAINANT_KEY_SECRET", "DESK_TOKENS", "SIMULATED_CLOCK", "ENCRYPTION_MASTER_KEY",
              "ENCRYPTION_MASTER_KEY_FILE", "ENCRYPTION_PREVIOUS_MASTER_KEY", "ENCRYPTION_PREVIOUS_MASTER_KEY_FILE")


def production(**overrides: Any) -> Settings:
    """What a deployment sets: strong keys, no DEV_MODE (explicit, whatever a local .env says)."""
    fields: dict[str, Any] = {"dev_mode": False, "complainant_key_secret": STRONG_KEY,
                              "encryption_master_key": SecretStr(MASTER_KEY), **overrides}
    return Settings(**fields)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """The environment of a deployment that set nothing, and no .env file."""
    for name in SECRET_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_production_settings_with_real_secrets_start_without_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    settings = production(desk_tokens=TOKENS)
    with caplog.at_level(logging.WARNING):
        assert refuse_unsafe(settings, "intake") is settings
        assert refuse_unsafe(settings, "desk-api", serves_desks=True) is settings
    assert caplog.records == []


@pytest.mark.parametrize("key", [
    DEV_COMPLAINANT_KEY,
    "9c1f0e7b2a64d8355e1b7f02ca9d46e",  # 31 characters
    "x" * 64,  # long but plain
    "abababababababababababababababab",
])
def test_a_known_or_weak_complainant_key_is_refused_naming_the_setting(key: str) -> None:
    with pytest.raises(ConfigurationRefused) as refused:
        refuse_unsafe(production(complainant_key_secret=SecretStr(key)), "intake")
    message = str(refused.value)
    assert "\n" not in message and message.startswith("intake refuses to start")
    assert "COMPLAINANT_KEY_SECRET" in message and "DEV_MODE=true" in message
    assert key not in message


def test_the_default_settings_are_refused_outside_dev_mode(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationRefused, match="COMPLAINANT_KEY_SECRET"):
        refuse_unsafe(get_settings(), "routing")


def test_the_desk_api_without_tokens_is_refused() -> None:
    with pytest.raises(ConfigurationRefused, match="desk-api refuses to start: set DESK_TOKENS"):
        refuse_unsafe(production(), "desk-api", serves_desks=True)
    # The pipeline services take no desk requests: no tokens needed there.
    refuse_unsafe(production(), "routing")


def test_the_simulated_clock_is_for_development_only() -> None:
    with pytest.raises(ConfigurationRefused, match="SIMULATED_CLOCK"):
        refuse_unsafe(production(simulated_clock=True), "followup")
    refuse_unsafe(production(simulated_clock=True, dev_mode=True), "followup")


def test_dev_mode_allows_the_defaults_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(dev_mode=True, complainant_key_secret=SecretStr(DEV_COMPLAINANT_KEY), desk_tokens={})
    with caplog.at_level(logging.WARNING, logger="shared.config"):
        refuse_unsafe(settings, "desk-api", serves_desks=True)
    [warning] = caplog.records
    text = warning.getMessage()
    assert "DEV_MODE" in text and "COMPLAINANT_KEY_SECRET" in text and "DESK_TOKENS" in text
    assert DEV_COMPLAINANT_KEY not in text


def test_dev_mode_is_read_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    assert get_settings().dev_mode is False
    get_settings.cache_clear()
    clean_env.setenv("DEV_MODE", "true")
    assert get_settings().dev_mode is True


def test_every_faststream_service_refuses_where_it_is_built() -> None:
    with pytest.raises(ConfigurationRefused, match="unit-service refuses to start"):
        Service("unit-service", production(complainant_key_secret=SecretStr(DEV_COMPLAINANT_KEY)))
    assert Service("unit-service", production()).settings.dev_mode is False


def test_the_desk_api_refuses_where_it_is_built() -> None:
    from tests.unit.desk_api.fakes import FakePublisher, FakeStore
    with pytest.raises(ConfigurationRefused, match="DESK_TOKENS"):
        create_app(production(), store=FakeStore(), publish=FakePublisher())
    create_app(production(desk_tokens=TOKENS), store=FakeStore(), publish=FakePublisher())
    create_app(Settings(dev_mode=True), store=FakeStore(), publish=FakePublisher())


def test_secrets_stay_out_of_reprs_and_validation_errors() -> None:
    settings = production(desk_tokens=TOKENS)
    for text in (repr(settings), str(settings)):
        assert STRONG_KEY.get_secret_value() not in text and next(iter(TOKENS)) not in text
    with pytest.raises(ValidationError) as invalid:
        Settings(complainant_key_secret=12345678901234567890, desk_tokens={"desk-token-x": "army"})
    assert "12345678901234567890" not in str(invalid.value) and "desk-token-x" not in str(invalid.value)


@pytest.mark.parametrize("tokens", ['{"s3cr3t-police-xyz": police}', '{"s3cr3t-police-xyz": "army"}', '["x"]'])
def test_an_invalid_environment_stops_with_one_line_naming_the_variable(clean_env: pytest.MonkeyPatch,
                                                                        tokens: str) -> None:
    clean_env.setenv("DESK_TOKENS", tokens)
    with pytest.raises(ConfigurationRefused) as refused:
        get_settings()
    message = str(refused.value)
    assert message.startswith("invalid settings: DESK_TOKENS") and "\n" not in message
    assert "s3cr3t-police-xyz" not in message and refused.value.__cause__ is None


def _start(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    return subprocess.run([sys.executable, "-m", *command, "--host", "127.0.0.1", "--port", "1"],
                          cwd=cwd, env={**clean, "PYTHONPATH": str(REPO_ROOT), **env},
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("command", "setting"), [
    (["faststream", "run", "services.routing.main:app"], "COMPLAINANT_KEY_SECRET"),
    (["uvicorn", "services.desk_api.main:app"], "DESK_TOKENS"),
])
def test_a_deployed_service_exits_at_start_up_with_one_line(tmp_path: Path, command: list[str],
                                                            setting: str) -> None:
    # A strong key, so the desk API's only gap is its tokens; the routing service is given the public key.
    key = DEV_COMPLAINANT_KEY if setting == "COMPLAINANT_KEY_SECRET" else STRONG_KEY.get_secret_value()
    started = _start(command, tmp_path, COMPLAINANT_KEY_SECRET=key)
    assert started.returncode != 0
    assert "Traceback" not in started.stderr
    [line] = [line for line in started.stderr.splitlines() if "refuses to start" in line]
    assert setting in line and key not in started.stderr + started.stdout


def test_env_is_read_only_in_shared_config() -> None:
    """One place reads the environment (the tools, apart from the product, read their own)."""
    allowed = {REPO_ROOT / "shared" / "config.py"}
    exempt: tuple[Path, ...] = ()
    readers = [
        path.relative_to(REPO_ROOT).as_posix()
        for folder in ("services", "shared")
        for path in sorted((REPO_ROOT / folder).rglob("*.py"))
        if path not in allowed and not any(path.is_relative_to(e) for e in exempt)
        and re.search(r"\bos\.environ\b|\bgetenv\b|\bfrom os import\b.*\benviron\b", path.read_text(encoding="utf-8"))
    ]
    assert readers == []


def test_desk_tokens_parse_from_json(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DESK_TOKENS", json.dumps({"s3cr3t-police": "police", "s3cr3t-legal": "legal"}))
    assert get_settings().desk_tokens == {"s3cr3t-police": Unit.POLICE, "s3cr3t-legal": Unit.LEGAL}


def test_the_services_that_handle_personal_data_refuse_the_public_master_key() -> None:
    public = production(encryption_master_key=None)
    for service, flags in (("intake", {"personal_data": True}), ("desk-api", {"serves_desks": True})):
        with pytest.raises(ConfigurationRefused, match="ENCRYPTION_MASTER_KEY_FILE") as refused:
            refuse_unsafe(public, service, **flags)
        assert "openssl rand -base64 96" in str(refused.value)
    refuse_unsafe(public, "routing")  # it never sees a complainant: no master key needed
    refuse_unsafe(production(encryption_master_key=None, dev_mode=True), "intake", personal_data=True)


def test_the_master_key_comes_from_its_file_before_the_environment(tmp_path: Path) -> None:
    key_file = tmp_path / "master.key"
    other = base64.b64encode(bytes(range(100, 196))).decode()
    key_file.write_text(other + "\n")
    settings = production(encryption_master_key_file=key_file,
                          encryption_previous_master_key=SecretStr(MASTER_KEY))
    assert settings.master_keys() == (base64.b64decode(other), base64.b64decode(MASTER_KEY))


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_master_key_of_the_wrong_shape_stops_naming_the_setting_not_the_value(value: str) -> None:
    with pytest.raises(ConfigurationRefused) as refused:
        production(encryption_master_key=SecretStr(value)).master_keys()
    assert str(refused.value) == "ENCRYPTION_MASTER_KEY: must be 96 bytes, base64"


def test_a_clusters_bootstrap_reaches_kafka_as_one_address_per_broker() -> None:
    """FastStream reads a string as one address: a comma-joined bootstrap must be split before it gets it."""
    from shared.config import bootstrap_servers
    from shared.publishing import KafkaPublisher
    from shared.runtime import Service

    joined = "127.0.0.1:39092, 127.0.0.1:39093,127.0.0.1:39094"
    expected = ["127.0.0.1:39092", "127.0.0.1:39093", "127.0.0.1:39094"]
    assert bootstrap_servers(joined) == expected and bootstrap_servers("127.0.0.1:9092") == ["127.0.0.1:9092"]
    service = Service("probe", Settings(kafka_bootstrap_servers=joined, dev_mode=True))
    assert service.broker._connection_kwargs["bootstrap_servers"] == expected
    assert KafkaPublisher(joined, 1.0, "probe").broker._connection_kwargs["bootstrap_servers"] == expected


def test_the_services_leave_creating_topics_to_the_broker() -> None:
    """FastStream's own topic creation makes one partition and one replica: on a cluster that is one copy."""
    from shared.runtime import Service

    assert Service("probe", Settings(dev_mode=True)).broker.config.allow_auto_create_topics is False
