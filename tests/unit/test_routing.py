"""Routing: a danger now first, then the category's unit; handed-back units are never chosen again; a critical
case never waits in a unit that cannot act at once without review and an alert to command."""

from __future__ import annotations

import pytest
import yaml

from shared.domain.classification.policy import DEFAULT_POLICY_PATH, Policy, parse_policy
from shared.domain.routing import load_policy, route
from shared.domain.triage import Assessment, Category, DangerKind, RiskFlag, Unit, Urgency


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


def _assessment(
    category: Category,
    flags: list[RiskFlag] | None = None,
    signals: list[str] | None = None,
    urgency: Urgency = Urgency.NORMAL,
    top: list[tuple[Category, float]] | None = None,
    needs_review: bool = False,
    danger: DangerKind | None = None,
    suspected: Unit | None = None,
) -> Assessment:
    return Assessment(
        category=category,
        urgency=urgency,
        risk_flags=flags or [],
        signals=signals or [],
        confidence=0.9,
        top_categories=top or [(category, 0.9)],
        needs_review=needs_review,
        danger=danger,
        danger_suspected=suspected,
    )


def test_category_unit_from_policy(policy: Policy) -> None:
    decision = route(_assessment(Category.FAMILY), policy)
    assert decision.unit == Unit.MEDIATION
    assert decision.override is None
    assert decision.policy_version == policy.version
    assert any(r.kind == "policy" and r.code == "category.family" for r in decision.reasons)


# -- danger now: every category x danger combination -------------------------------------------

IMMEDIATE = {Unit.POLICE, Unit.COMMAND}
DANGER_UNIT = {
    DangerKind.WEAPON: Unit.POLICE,
    DangerKind.VIOLENCE: Unit.POLICE,
    DangerKind.SELF_HARM: Unit.POLICE,
    DangerKind.LIFE_AT_RISK: Unit.POLICE,
    DangerKind.TRAPPED_DISASTER: Unit.COMMAND,
    DangerKind.MASS_INCIDENT: Unit.COMMAND,
}


@pytest.mark.parametrize("danger", list(DangerKind))
@pytest.mark.parametrize("category", list(Category))
def test_a_danger_goes_to_its_immediate_unit_whatever_the_category(
    policy: Policy, category: Category, danger: DangerKind
) -> None:
    decision = route(_assessment(category, [RiskFlag.DANGER_NOW], danger=danger), policy)
    assert (decision.unit, decision.urgency) == (DANGER_UNIT[danger], Urgency.CRITICAL)
    assert decision.override == f"danger.{danger.value}"
    assert any(r.kind == "override" and r.code == f"danger.{danger.value}" for r in decision.reasons)
    assert not decision.alert_command


@pytest.mark.parametrize("unit", sorted(IMMEDIATE))
@pytest.mark.parametrize("category", list(Category))
def test_a_danger_only_the_model_suspects_goes_to_its_unit_for_review(
    policy: Policy, category: Category, unit: Unit
) -> None:
    decision = route(_assessment(category, suspected=unit, needs_review=True), policy)
    assert (decision.unit, decision.urgency, decision.override) == (unit, Urgency.CRITICAL, "danger.suspected")
    assert decision.needs_review and not decision.alert_command


def test_the_cues_kind_wins_over_the_models_suspicion(policy: Policy) -> None:
    decision = route(_assessment(Category.FAMILY, danger=DangerKind.MASS_INCIDENT, suspected=Unit.POLICE), policy)
    assert decision.unit == Unit.COMMAND


@pytest.mark.parametrize("category", list(Category))
def test_no_danger_goes_to_the_categorys_unit(policy: Policy, category: Category) -> None:
    decision = route(_assessment(category, urgency=Urgency.HIGH), policy)
    assert decision.unit == policy.unit_for(category)
    assert decision.override is None
    assert not decision.alert_command


@pytest.mark.parametrize("category", [c for c in Category if load_policy().unit_for(c) not in IMMEDIATE])
def test_a_critical_case_without_a_danger_kind_in_a_slow_unit_is_reviewed_and_command_alerted(
    policy: Policy, category: Category
) -> None:
    # an operator's urgency rule may make a case critical without a danger now
    decision = route(_assessment(category, urgency=Urgency.CRITICAL), policy)
    assert decision.unit == policy.unit_for(category)
    assert decision.needs_review and decision.alert_command
    assert any(r.code == "critical_not_immediate" for r in decision.reasons)


@pytest.mark.parametrize("danger", list(DangerKind))
def test_a_danger_route_pointed_at_a_slow_unit_is_reviewed_and_command_alerted(danger: DangerKind) -> None:
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["danger"]["routes"][danger.value]["unit"] = "mediation"
    policy = parse_policy(data)
    decision = route(_assessment(Category.FAMILY, danger=danger), policy)
    assert decision.unit == Unit.MEDIATION
    assert decision.urgency == Urgency.CRITICAL
    assert decision.needs_review and decision.alert_command


@pytest.mark.parametrize("danger", list(DangerKind))
def test_a_danger_handed_back_by_its_unit_goes_to_the_other_immediate_unit(
    policy: Policy, danger: DangerKind
) -> None:
    first = DANGER_UNIT[danger]
    decision = route(_assessment(Category.NEIGHBOR, danger=danger), policy, frozenset({first}))
    assert decision.unit == (IMMEDIATE - {first}).pop()
    assert decision.urgency == Urgency.CRITICAL
    assert decision.needs_review and not decision.alert_command
    assert any(r.kind == "override" and "退回" in r.detail for r in decision.reasons)


def test_a_danger_handed_back_by_both_immediate_units_is_watched(policy: Policy) -> None:
    decision = route(_assessment(Category.NEIGHBOR, danger=DangerKind.WEAPON), policy, frozenset(IMMEDIATE))
    assert decision.unit == Unit.MEDIATION
    assert decision.urgency == Urgency.CRITICAL
    assert decision.needs_review and decision.alert_command


def test_excluded_unit_falls_to_next_category(policy: Policy) -> None:
    a = _assessment(
        Category.CONTRACT_DEBT,
        top=[(Category.CONTRACT_DEBT, 0.6), (Category.LEGAL_AID, 0.3), (Category.FRAUD, 0.1)],
    )
    decision = route(a, policy, frozenset({Unit.MEDIATION}))
    assert decision.unit == Unit.LEGAL
    assert any("退回" in r.detail for r in decision.reasons)


def test_excluded_units_skip_same_unit_categories_then_command(policy: Policy) -> None:
    a = _assessment(
        Category.FAMILY,
        top=[(Category.FAMILY, 0.7), (Category.NEIGHBOR, 0.2), (Category.FRAUD, 0.1)],
    )
    decision = route(a, policy, frozenset({Unit.MEDIATION, Unit.POLICE}))
    assert decision.unit == Unit.COMMAND
    assert decision.needs_review


def test_every_unit_excluded_still_decides_and_asks_for_review(policy: Policy) -> None:
    decision = route(_assessment(Category.FAMILY), policy, frozenset(Unit))
    assert decision.unit == Unit.COMMAND
    assert decision.needs_review


def test_review_flag_is_carried_over(policy: Policy) -> None:
    decision = route(_assessment(Category.OTHER, needs_review=True), policy)
    assert decision.needs_review
