"""Routing policy: which unit takes a case, decided by the policy data and explained.

Order: a danger now goes where the policy's danger routes say (a unit that can act at once), then
the category's usual unit. A unit that handed the case back (`excluded_units`) is never chosen again:
the case falls to the unit of the next most likely category, else to the command centre.

The invariant, whatever the policy file says: a `critical` case, or one with a danger now, never waits
in a unit that cannot act at once without a person knowing. Either it is with `police` or `command`,
or it is flagged for review and the command centre is alerted at once (`alert_command`).
"""

from __future__ import annotations

from shared.domain.classification.policy import Policy, PolicyError, load_policy
from shared.domain.triage import Assessment, Reason, RoutingDecision, Unit, Urgency

__all__ = ["Policy", "PolicyError", "load_policy", "route"]

FALLBACK_UNIT = Unit.COMMAND  # the town command centre coordinates whatever no desk will take


def route(
    assessment: Assessment,
    policy: Policy,
    excluded_units: frozenset[Unit] = frozenset(),
) -> RoutingDecision:
    decision = _route_danger(assessment, policy, excluded_units) or _route_category(
        assessment, policy, excluded_units
    )
    return _hold_the_invariant(decision, assessment, policy)


def _route_danger(assessment: Assessment, policy: Policy, excluded_units: frozenset[Unit]) -> RoutingDecision | None:
    """A danger found by the cues goes where its kind's route says; one only the danger model suspects goes
    to the unit the model names, flagged for review (the assessment already is)."""
    danger = policy.danger
    if assessment.danger is not None:
        route_ = danger.routes[assessment.danger]
        code, label, first = f"danger.{assessment.danger.value}", route_.label, route_.unit
    elif assessment.danger_suspected is not None:
        code, label, first = "danger.suspected", "模型判断可能有人正处危险", assessment.danger_suspected
    else:
        return None
    candidates = [first] + [u for u in danger.immediate_units if u != first]
    reasons: list[Reason] = []
    for unit in candidates:
        if unit in excluded_units:
            reasons.append(Reason(kind="override", code=code,
                                  detail=f"{label} → {unit.value}，但该单位已退回此案，不再派给它"))
            continue
        detail = f"{label} → {unit.value}"
        if unit != first:
            detail += "（改派另一能立即处置的单位）"
        reasons.append(Reason(kind="override", code=code, detail=detail))
        return RoutingDecision(
            unit=unit,
            urgency=Urgency.CRITICAL,
            override=code,
            reasons=reasons,
            needs_review=assessment.needs_review or unit != first,
            policy_version=policy.version,
        )
    # every unit that can act at once handed it back: the category's unit, watched by a person
    fallback = _route_category(assessment, policy, excluded_units)
    return fallback.model_copy(update={"urgency": Urgency.CRITICAL, "override": code,
                                       "reasons": reasons + fallback.reasons})


def _route_category(assessment: Assessment, policy: Policy, excluded_units: frozenset[Unit]) -> RoutingDecision:
    reasons: list[Reason] = []
    candidates = [assessment.category] + [c for c, _ in assessment.top_categories if c != assessment.category]
    for rank, category in enumerate(candidates):
        unit = policy.unit_for(category)
        if unit in excluded_units:
            reasons.append(
                Reason(
                    kind="policy",
                    code=f"category.{category.value}",
                    detail=f"{category.value} → {unit.value}，但该单位已退回此案",
                )
            )
            continue
        label = policy.categories[category].label
        detail = f"{category.value}（{label}）→ {unit.value}"
        if rank > 0:
            detail += "（按次可能的类别改派）"
        reasons.append(Reason(kind="policy", code=f"category.{category.value}", detail=detail))
        return _decision(unit, assessment.urgency, reasons, assessment, assessment.needs_review, policy)

    unit = FALLBACK_UNIT
    if unit in excluded_units:
        # every likely unit and the command centre handed it back: a person must decide
        unit = next((u for u in policy.units if u not in excluded_units), FALLBACK_UNIT)
    reasons.append(
        Reason(kind="policy", code="fallback", detail=f"各可能单位均已退回，转 {unit.value} 协调")
    )
    return _decision(unit, assessment.urgency, reasons, assessment, True, policy)


def _hold_the_invariant(decision: RoutingDecision, assessment: Assessment, policy: Policy) -> RoutingDecision:
    """A critical case or a danger now with a unit that cannot act at once: review, and tell command."""
    urgent = decision.urgency is Urgency.CRITICAL or assessment.danger is not None or bool(
        assessment.danger_suspected
    )
    if not urgent or policy.danger.can_act_at_once(decision.unit):
        return decision
    why = Reason(
        kind="review",
        code="critical_not_immediate",
        detail=f"紧急案件派往 {decision.unit.value}（不能立即处置），需人工复核，并已即时通报镇域指挥中心",
    )
    return decision.model_copy(update={
        "needs_review": True, "alert_command": True, "reasons": [*decision.reasons, why],
    })


def _decision(
    unit: Unit,
    urgency: Urgency,
    reasons: list[Reason],
    assessment: Assessment,
    needs_review: bool,
    policy: Policy,
) -> RoutingDecision:
    if needs_review and not any(r.kind == "review" for r in reasons):
        why = next((r for r in assessment.reasons if r.kind == "review"), None)
        reasons.append(why or Reason(kind="review", code="fallback", detail="需人工复核"))
    # only routing's own reasons: the assessment's (rules, model, urgency) travel with the assessment
    return RoutingDecision(
        unit=unit,
        urgency=urgency,
        override=None,
        reasons=reasons,
        needs_review=needs_review,
        policy_version=policy.version,
    )
