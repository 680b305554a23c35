"""Routing: apply the routing policy to an assessment and hand the case to a unit.

The case records its assessment and its routing in one save; each attempt is decided once (a replay
keeps the first unit, whatever the policy says now) and its events are published again with the same ids.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from shared.domain.lifecycle import TransitionRejected
from shared.domain.routing import Policy, route
from shared.domain.workdays import Calendar
from shared.events import CaseClassified, Envelope
from shared.handling import Rejected, parse_event
from shared.metrics import CASES_NEEDING_REVIEW, CASES_ROUTED, DEADLINES_OPENED
from shared.ports import CaseRepository

Publish = Callable[[Envelope], Awaitable[None]]


async def route_case(body: bytes, *, cases: CaseRepository, publish: Publish, policy: Policy, calendar: Calendar,
                     max_bytes: int, now: datetime) -> list[Envelope]:
    classified = parse_event(body, CaseClassified, max_bytes=max_bytes)
    p = classified.payload
    case = await cases.get(classified.case_id)
    if case is None:
        raise Rejected("unknown_case", f"no case {classified.case_id}")
    change = case.classify(p.assessment, now, classified.event_id)
    decision = route(case.assessment or p.assessment, policy, frozenset(p.excluded_units))
    try:
        change += case.route(decision, classified, now, calendar)
    except TransitionRejected as exc:
        raise Rejected("not_routable", str(exc)) from None
    await cases.save(case, change)
    for event in change.events:  # before the offset is committed: a replay repeats them, with the same ids
        await publish(event)
    if change.changed:
        CASES_ROUTED.labels(decision.unit.value, decision.override or "none").inc()
        CASES_NEEDING_REVIEW.inc(decision.needs_review)
        for d in change.deadlines:
            DEADLINES_OPENED.labels(d.rule).inc()
    return change.events
