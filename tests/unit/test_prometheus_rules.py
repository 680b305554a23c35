"""The alert rules and the Prometheus configuration, checked by Prometheus' own promtool: the rules parse,
the configuration (with the rules it names) is valid, and every alert passes its unit tests in
deploy/prometheus/tests. `make test` installs promtool first (`make prometheus`); only a run outside CI on a
machine without it skips these."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.test.yml"))
PROMTOOL = shutil.which("promtool")

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None and not os.environ.get("CI"),
    reason="promtool is not installed: `make prometheus` installs Debian's prometheus package",
)


def promtool(*args: str | Path) -> str:
    assert PROMTOOL is not None, "promtool is not installed, and CI must check the rules: `make prometheus`"
    result = subprocess.run([PROMTOOL, *map(str, args)], cwd=PROMETHEUS_DIR, capture_output=True, text=True,
                            timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(map(str, args))} failed:\n{output}"
    return output


def test_there_are_rules_and_tests_of_them() -> None:
    assert RULES and RULE_TESTS


@needs_promtool
def test_the_rules_are_valid() -> None:
    promtool("check", "rules", *RULES)


@needs_promtool
def test_the_configuration_and_the_rules_it_loads_are_valid() -> None:
    output = promtool("check", "config", "prometheus.yml")
    assert f"SUCCESS: {len(RULES)} rule files found" in output


@needs_promtool
def test_every_alert_passes_its_unit_tests() -> None:
    promtool("test", "rules", *RULE_TESTS)


def _yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_every_alert_is_seen_firing_in_a_test_and_seen_quiet_in_one() -> None:
    alerts = {rule["alert"] for path in RULES for group in _yaml(path)["groups"] for rule in group["rules"]
              if "alert" in rule}
    checks = [check for path in RULE_TESTS for case in _yaml(path)["tests"] for check in case["alert_rule_test"]]
    firing = {check["alertname"] for check in checks if check.get("exp_alerts")}
    quiet = {check["alertname"] for check in checks if not check.get("exp_alerts")}
    assert alerts - firing == set(), "alerts never seen firing in deploy/prometheus/tests"
    assert alerts - quiet == set(), "alerts never seen quiet in deploy/prometheus/tests"
