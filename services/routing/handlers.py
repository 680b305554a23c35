"""Routing: apply the routing policy to an assessment, record the decision once, hand the case to a desk."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from shared.domain.case import CaseStatus
from shared.domain.routing import Policy, route
from shared.domain.triage import RoutingDecision, Unit
from shared.events import AlertKind, CaseAlert, CaseAlertPayload, CaseClassified, CaseRouted, CaseRoutedPayload
from shared.handling import Rejected, parse_event
from shared.metrics import CASES_NEEDING_REVIEW, CASES_ROUTED
from shared.store import CaseStore, timeline_entry

Emit = Callable[[CaseRouted], Awaitable[None]]
Alert = Callable[[CaseAlert], Awaitable[None]]


async def route_case(
    body: bytes, *, store: CaseStore, emit: Emit, alert: Alert, policy: Policy, max_bytes: int, now: datetime
) -> CaseRouted:
    classified = parse_event(body, CaseClassified, max_bytes=max_bytes)
    p = classified.payload
    case_id = classified.case_id
    case = await store.get_case(case_id)
    if case is None:
        raise Rejected("unknown_case", f"no case {case_id}")

    decision = route(p.assessment, policy, frozenset(p.excluded_units))
    first_time = await store.record_routing(case_id, p.routing_attempt, {
        "unit": decision.unit.value, "category": p.assessment.category.value,
        "decision": decision.model_dump(mode="json"), "at": now,
    })
    if not first_time:  # a replay: keep the unit recorded the first time, whatever the policy says now
        stored = await store.get_routing(case_id, p.routing_attempt)
        assert stored is not None
        decision = RoutingDecision.model_validate(stored["decision"])
    unit: Unit = decision.unit

    entry = timeline_entry(f"routed:{p.routing_attempt}", now, "routed", unit=unit.value, override=decision.override,
                           attempt=p.routing_attempt)
    await store.advance(case_id, {CaseStatus.CLASSIFIED, CaseStatus.RETURNED}, CaseStatus.ROUTED, {
        "unit": unit.value,
        "urgency": decision.urgency.value,
        "routing": decision.model_dump(mode="json"),
        "routing_attempt": p.routing_attempt,
        "needs_review": decision.needs_review or p.assessment.needs_review,
        "routed_at": now,
    }, op_id=classified.event_id, entry=entry, case=case)
    event = classified.follow_up(CaseRouted, CaseRoutedPayload(
        unit=unit,
        category=p.assessment.category,
        urgency=decision.urgency,
        risk_flags=p.assessment.risk_flags,
        decision=decision,
        routing_attempt=p.routing_attempt,
        text=str(case.get("text", "")),
        location=case.get("location"),
        received_at=case["received_at"],
    ), f"routed{p.routing_attempt}")
    await emit(event)
    if decision.alert_command:  # before the offset is committed: a replay repeats it, with the same id
        await alert(classified.follow_up(CaseAlert, CaseAlertPayload(
            kind=AlertKind.CRITICAL_ELSEWHERE, unit=Unit.COMMAND, rule="routing.critical_not_immediate",
            due=case["received_at"].date().isoformat(),  # act now: the day it came in, whenever replayed
        ), f"critical{p.routing_attempt}"))
    if first_time:
        CASES_ROUTED.labels(unit.value, decision.override or "none").inc()
        if decision.needs_review:
            CASES_NEEDING_REVIEW.inc()
    return event
