"""Routing policy: which unit takes a case, decided by the policy data and explained.

Order: the policy's overrides (danger to life -> police, collective action -> command), then the
category's usual unit. A unit that handed the case back (`excluded_units`) is never chosen again:
the case falls to the unit of the next most likely category, else to the command centre.
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
    flags = {f.value for f in assessment.risk_flags}
    signals = set(assessment.signals)
    reasons: list[Reason] = []
    urgency = assessment.urgency
    needs_review = assessment.needs_review

    for override in policy.overrides:
        cond = override.fires(flags, signals)
        if cond is None:
            continue
        fired = sorted(flags & {f.value for f in cond.flags_any})
        fired += sorted(signals.intersection(cond.signals_any))
        if override.unit in excluded_units:
            reasons.append(
                Reason(
                    kind="override",
                    code=override.id,
                    detail=f"{', '.join(fired)} → {override.unit.value}，但该单位已退回此案，不再派给它",
                )
            )
            continue
        if override.urgency.rank > urgency.rank:
            urgency = override.urgency
        reasons.append(
            Reason(
                kind="override",
                code=override.id,
                detail=f"{override.label or override.id}: {', '.join(fired)} → {override.unit.value}",
            )
        )
        return _decision(override.unit, urgency, override.id, reasons, assessment, needs_review, policy)

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
        return _decision(unit, urgency, None, reasons, assessment, needs_review, policy)

    unit = FALLBACK_UNIT
    if unit in excluded_units:
        # every likely unit and the command centre handed it back: a person must decide
        unit = next((u for u in policy.units if u not in excluded_units), FALLBACK_UNIT)
    reasons.append(
        Reason(kind="policy", code="fallback", detail=f"各可能单位均已退回，转 {unit.value} 协调")
    )
    return _decision(unit, urgency, None, reasons, assessment, True, policy)


def _decision(
    unit: Unit,
    urgency: Urgency,
    override: str | None,
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
        override=override,
        reasons=reasons,
        needs_review=needs_review,
        policy_version=policy.version,
    )
