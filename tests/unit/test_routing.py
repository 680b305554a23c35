"""Routing: overrides first, then the category's unit; handed-back units are never chosen again."""

from __future__ import annotations

import pytest

from shared.domain.classification.policy import Policy
from shared.domain.routing import load_policy, route
from shared.domain.triage import Assessment, Category, RiskFlag, Unit, Urgency


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
) -> Assessment:
    return Assessment(
        category=category,
        urgency=urgency,
        risk_flags=flags or [],
        signals=signals or [],
        confidence=0.9,
        top_categories=top or [(category, 0.9)],
        needs_review=needs_review,
    )


def test_category_unit_from_policy(policy: Policy) -> None:
    decision = route(_assessment(Category.FAMILY), policy)
    assert decision.unit == Unit.MEDIATION
    assert decision.override is None
    assert decision.policy_version == policy.version
    assert any(r.kind == "policy" and r.code == "category.family" for r in decision.reasons)


@pytest.mark.parametrize("flag", [RiskFlag.SELF_HARM, RiskFlag.DOMESTIC_VIOLENCE])
def test_danger_to_life_overrides_to_police_critical(policy: Policy, flag: RiskFlag) -> None:
    decision = route(_assessment(Category.NEIGHBOR, [flag]), policy)
    assert (decision.unit, decision.urgency, decision.override) == (Unit.POLICE, Urgency.CRITICAL, "danger_to_life")
    assert any(r.kind == "override" and r.code == "danger_to_life" for r in decision.reasons)


def test_violence_now_overrides_but_past_violence_does_not(policy: Policy) -> None:
    now = route(_assessment(Category.NEIGHBOR, [RiskFlag.VIOLENCE], ["violence_now"]), policy)
    assert (now.unit, now.urgency) == (Unit.POLICE, Urgency.CRITICAL)
    past = route(_assessment(Category.NEIGHBOR, [RiskFlag.VIOLENCE], urgency=Urgency.HIGH), policy)
    assert (past.unit, past.urgency, past.override) == (Unit.MEDIATION, Urgency.HIGH, None)


def test_collective_action_overrides_to_command_critical(policy: Policy) -> None:
    decision = route(_assessment(Category.LABOR, [RiskFlag.COLLECTIVE_ACTION]), policy)
    assert (decision.unit, decision.urgency, decision.override) == (
        Unit.COMMAND,
        Urgency.CRITICAL,
        "collective_action",
    )


def test_danger_to_life_comes_before_collective_action(policy: Policy) -> None:
    decision = route(_assessment(Category.LABOR, [RiskFlag.COLLECTIVE_ACTION, RiskFlag.SELF_HARM]), policy)
    assert decision.unit == Unit.POLICE
    assert decision.override == "danger_to_life"


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


def test_override_unit_excluded_is_not_chosen_again(policy: Policy) -> None:
    a = _assessment(Category.NEIGHBOR, [RiskFlag.SELF_HARM], urgency=Urgency.CRITICAL)
    decision = route(a, policy, frozenset({Unit.POLICE}))
    assert decision.unit == Unit.MEDIATION
    assert decision.override is None
    assert decision.urgency == Urgency.CRITICAL  # the danger is still there
    assert any(r.kind == "override" and "退回" in r.detail for r in decision.reasons)


def test_every_unit_excluded_still_decides_and_asks_for_review(policy: Policy) -> None:
    decision = route(_assessment(Category.FAMILY), policy, frozenset(Unit))
    assert decision.unit == Unit.COMMAND
    assert decision.needs_review


def test_review_flag_is_carried_over(policy: Policy) -> None:
    decision = route(_assessment(Category.OTHER, needs_review=True), policy)
    assert decision.needs_review
