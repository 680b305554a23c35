"""Follow-up: hold every case to its legal time limits, apply the desks' actions, fire durable timers.

The follow-up is the one writer of a case's status after routing. Each handler loads the case, lets it
decide, saves what changed and publishes what it asked for. Every step is safe to repeat: timeline entries,
timers and action records have ids derived from their causes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from shared.domain.case import Case
from shared.domain.change import Change, TimelineEntry
from shared.domain.deadlines import Deadline
from shared.domain.followup import timers_of
from shared.domain.lifecycle import TransitionRejected
from shared.domain.workdays import Calendar, default_calendar, local_date
from shared.events import CaseRouted, DeskAction, Envelope
from shared.handling import parse_event
from shared.metrics import DEADLINES_OPENED, DESK_ACTIONS
from shared.ports import Storage

Publish = Callable[[Envelope], Awaitable[None]]


@dataclass
class FollowUp:
    """What the follow-up's handlers need from the outside world."""

    storage: Storage
    publish: Publish
    max_bytes: int
    calendar: Calendar = field(default_factory=default_calendar)


async def save(deps: FollowUp, case: Case, change: Change, now: datetime) -> None:
    """Time the deadlines a step opened or moved, save what it changed, publish what it asked for.

    Timers first: a step saved without them would never be timed (its retry finds it applied, and a
    replayed step opens nothing), while a timer whose step was not saved finds nothing to do when it fires."""
    await deps.storage.timers.schedule(timers_of(case.id, change.deadlines, deps.calendar), local_date(now))
    await deps.storage.cases.save(case, change)
    for event in change.events:
        await deps.publish(event)


async def on_routed(body: bytes, deps: FollowUp, now: datetime) -> None:
    """Time the limits that started with the routing (the case recorded them when it was routed)."""
    routed = parse_event(body, CaseRouted, max_bytes=deps.max_bytes)
    deadlines = [Deadline(d.rule, date.fromisoformat(d.start), date.fromisoformat(d.due), d.source)
                 for d in routed.payload.deadlines]
    await deps.storage.timers.schedule(timers_of(routed.case_id, deadlines, deps.calendar), local_date(now))


async def on_desk_action(body: bytes, deps: FollowUp, now: datetime) -> str:
    """Check the action against the case, apply it or refuse it, record the outcome; returns the outcome."""
    action = parse_event(body, DeskAction, max_bytes=deps.max_bytes)
    p = action.payload
    record: dict[str, object] = {"case_id": action.case_id, "unit": p.unit.value, "action": p.action.value,
                                 "actor": p.actor, "at": now}
    decided = await deps.storage.actions.get(action.event_id)
    if decided is not None and decided["outcome"] == "rejected":  # decided once: a redelivery changes nothing
        return "rejected"
    case = await deps.storage.cases.get(action.case_id)
    if case is None:
        return await _refused(deps, action, record, "no such case")
    # Applied before, its outcome perhaps unrecorded (the store failed in between): the timeline says how.
    earlier = await _applied_before(deps, case, action) if decided is None else None
    before = str(earlier.detail["before"]) if earlier else case.status.value
    try:
        change = case.act(action, now, deps.calendar)
    except TransitionRejected as rejected:
        await deps.storage.cases.save(case, case.refuse(action, str(rejected), now))
        return await _refused(deps, action, record, str(rejected))
    await save(deps, case, change, now)
    for d in change.deadlines:
        DEADLINES_OPENED.labels(d.rule).inc()
    after = str(earlier.detail["after"]) if earlier else case.status.value
    await deps.storage.actions.record(action.event_id, {**record, "outcome": "applied", "before": before,
                                                        "after": after})
    if change.changed:
        DESK_ACTIONS.labels(p.unit.value, p.action.value, "applied").inc()
    return "applied"


async def _applied_before(deps: FollowUp, case: Case, action: DeskAction) -> TimelineEntry | None:
    """The action's entry on the case's timeline, if it was applied (a refusal is written as `refused:`)."""
    entry_id = f"action:{action.event_id}"
    if not case.has(entry_id):
        return None
    return next((e for e in await deps.storage.cases.timeline(case.id) if e.id == entry_id), None)


async def _refused(deps: FollowUp, action: DeskAction, record: dict[str, object], reason: str) -> str:
    await deps.storage.actions.record(action.event_id, {**record, "outcome": "rejected", "reason": reason})
    DESK_ACTIONS.labels(action.payload.unit.value, action.payload.action.value, "rejected").inc()
    return "rejected"
