"""The policy file: it loads, it says what the brief says, and a bad file fails loudly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.domain.classification.policy import DEFAULT_POLICY_PATH, PolicyError, load_policy, parse_policy
from shared.domain.triage import Category, DangerKind, RiskFlag, Unit, Urgency

EXPECTED_UNITS = {
    Unit.MEDIATION: {
        "family", "neighbor", "property_land", "contract_debt", "labor", "consumer", "property_mgmt",
        "traffic_accident", "medical", "damages",
    },
    Unit.VISITOR: {"land_requisition", "admin_complaint"},
    Unit.COMMAND: {"environment", "urban_management", "safety_hazard", "other"},
    Unit.POLICE: {"public_security", "fraud"},
    Unit.LEGAL: {"legal_aid"},
}  # fmt: skip


def _raw() -> dict[str, Any]:
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_packaged_policy_loads_with_version() -> None:
    policy = load_policy()
    assert policy.version
    assert set(policy.units) == set(Unit)
    assert set(policy.categories) == set(Category)


def test_category_to_unit_table_is_the_briefs() -> None:
    policy = load_policy()
    for unit, categories in EXPECTED_UNITS.items():
        for name in categories:
            assert policy.unit_for(Category(name)) == unit, name


def test_every_category_has_a_chinese_label() -> None:
    policy = load_policy()
    for entry in policy.categories.values():
        assert any("\u4e00" <= ch <= "\u9fff" for ch in entry.label)


def test_every_danger_goes_to_a_unit_that_can_act_at_once() -> None:
    policy = load_policy()
    assert set(policy.danger.immediate_units) == {Unit.POLICE, Unit.COMMAND}
    assert set(policy.danger.routes) == set(DangerKind)
    for kind, target in policy.danger.routes.items():
        assert policy.danger.can_act_at_once(target.unit), kind
    assert policy.danger.routes[DangerKind.MASS_INCIDENT].unit == Unit.COMMAND
    assert policy.danger.routes[DangerKind.SELF_HARM].unit == Unit.POLICE


def test_danger_now_raises_to_critical() -> None:
    policy = load_policy()
    rule = next(r for r in policy.urgency_rules if RiskFlag.DANGER_NOW in r.flags_any)
    assert rule.at_least == Urgency.CRITICAL


def test_urgency_rules_raise_on_risk_flags() -> None:
    policy = load_policy()
    raising = {f for r in policy.urgency_rules if r.at_least is not None for f in r.flags_any}
    for flag in (RiskFlag.LARGE_SUM, RiskFlag.MANY_AFFECTED, RiskFlag.REPEATED, RiskFlag.DANGER_NOW):
        assert flag in raising


def test_policy_file_missing_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "nope.yaml")


def test_policy_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("version: [unclosed", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(path)


def test_unknown_unit_is_named_in_the_error() -> None:
    data = _raw()
    data["categories"]["family"]["unit"] = "courthouse"
    with pytest.raises(PolicyError, match=r"categories\.family\.unit"):
        parse_policy(data)


def test_missing_category_is_an_error() -> None:
    data = _raw()
    del data["categories"]["fraud"]
    with pytest.raises(PolicyError, match="categories missing: fraud"):
        parse_policy(data)


def test_unknown_key_is_an_error() -> None:
    data = _raw()
    data["review_treshold"] = 0.5  # a typo must not be silently ignored
    with pytest.raises(PolicyError, match="review_treshold"):
        parse_policy(data)


def test_unknown_danger_kind_or_a_missing_one_is_an_error() -> None:
    data = _raw()
    data["danger"]["routes"]["knives"] = {"unit": "police", "label": "刀"}
    with pytest.raises(PolicyError, match="danger"):
        parse_policy(data)
    data = _raw()
    del data["danger"]["routes"]["self_harm"]
    with pytest.raises(PolicyError, match="self_harm"):
        parse_policy(data)


def test_urgency_rule_needs_exactly_one_direction() -> None:
    data = _raw()
    data["urgency_rules"].append({"id": "both", "flags_any": ["repeated"], "at_least": "high", "at_most": "low"})
    with pytest.raises(PolicyError, match="exactly one of at_least / at_most"):
        parse_policy(data)


def test_threshold_out_of_range_is_an_error() -> None:
    data = _raw()
    data["review_threshold"] = 1.5
    with pytest.raises(PolicyError, match="review_threshold"):
        parse_policy(data)


def test_policy_must_be_a_mapping() -> None:
    with pytest.raises(PolicyError, match="must be a mapping"):
        parse_policy(["not", "a", "mapping"])
