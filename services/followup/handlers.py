"""Follow-up: hold every case to its legal time limits, apply the desks' actions, fire durable timers.

The follow-up service is the one writer of a case's status after routing. Every step is safe to repeat:
an action's outcome is decided once and stored under the action's id, deadlines and timers have ids
derived from the case and rule, and timeline entries are written once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from shared.domain.case import (
    Action,
    CaseStatus,
    CaseView,
    Transition,
    TransitionRejected,
    check_desk_action,
)
from shared.domain.deadlines import Calendar, Deadline, default_calendar, extend, local_date
from shared.domain.followup import TimerKind, deadlines_on_acceptance, deadlines_on_routing, timers_for
from shared.domain.triage import Category, RoutingDecision, Unit, Urgency
from shared.events import (
    AlertKind,
    CaseAlert,
    CaseAlertPayload,
    CaseClassified,
    CaseClassifiedPayload,
    CaseRouted,
    CaseRoutedPayload,
    Channel,
    DeskAction,
    derive_event_id,
)
from shared.handling import Rejected, parse_event
from shared.metrics import DEADLINES_OPENED, DESK_ACTIONS, TIMERS_FIRED
from shared.store import CaseStore, Document, assessment_from_document, deadline_key, timeline_entry, timer_id

log = logging.getLogger(__name__)


@dataclass
class FollowUp:
    """What the follow-up's handlers need from the outside world."""

    store: CaseStore
    alert: Callable[[CaseAlert], Awaitable[None]]
    reroute: Callable[[CaseClassified], Awaitable[None]]
    to_desk: Callable[[CaseRouted], Awaitable[None]]
    max_bytes: int
    calendar: Calendar | None = None

    @property
    def cal(self) -> Calendar:
        return self.calendar or default_calendar()


def _open_rules(case: Document) -> list[str]:
    return [d["rule"] for d in (case.get("deadlines") or {}).values() if not d.get("met_at")]


async def open_deadlines(deps: FollowUp, case: Document, deadlines: list[Deadline], now: datetime) -> None:
    """The deadlines and their timeline entries in one write, then their timers. A redelivery schedules
    the timers again (they are upserts), so a crash between the two loses none."""
    opened = await deps.store.open_deadlines(case, [
        {"rule": d.rule, "start": d.start.isoformat(), "due": d.due.isoformat(), "source": d.source, "opened_at": now}
        for d in deadlines
    ], [
        timeline_entry(f"deadline:{d.rule}:{d.due.isoformat()}", now, "deadline_opened", rule=d.rule,
                       due=d.due.isoformat(), source=d.source)
        for d in deadlines
    ])
    await _schedule(deps, case["_id"], deadlines, now)
    for rule in opened:
        DEADLINES_OPENED.labels(rule).inc()


async def _schedule(deps: FollowUp, case_id: str, deadlines: list[Deadline], now: datetime) -> None:
    await deps.store.schedule_timers(case_id, [
        (d.rule, d.due.isoformat(), timer.kind.value, timer.due_at)
        for d in deadlines for timer in timers_for(d, deps.cal)
    ], local_date(now))


async def extend_visitor_deadline(deps: FollowUp, case: Document, days: int | None, now: datetime) -> None:
    """The one extension a petition may have: a later due date, and timers that follow it."""
    field = deadline_key("visitor.resolve")
    current = (case.get("deadlines") or {}).get(field)
    if not current or current.get("met_at") or current.get("extended_by"):
        return
    original = Deadline(current["rule"], date.fromisoformat(current["start"]), date.fromisoformat(current["due"]),
                        current["source"])
    longer = extend(original, days, deps.cal)
    await cancel_timers(deps, case["_id"], original.rule, current["due"])
    await deps.store.cases.update_one({"_id": case["_id"]}, {"$set": {
        f"deadlines.{field}.due": longer.due.isoformat(), f"deadlines.{field}.extended_by": longer.rule,
    }})
    await _schedule(deps, case["_id"], [Deadline(original.rule, original.start, longer.due, original.source)], now)
    await deps.store.record(case["_id"], f"deadline:{original.rule}:{longer.due.isoformat()}", now,
                            "deadline_extended", rule=original.rule, due=longer.due.isoformat(), source=longer.source)


async def cancel_timers(deps: FollowUp, case_id: str, rule: str, due: str) -> None:
    for kind in TimerKind:
        await deps.store.cancel_timer(timer_id(case_id, rule, due, kind.value))


async def meet_deadlines(deps: FollowUp, case: Document, rules: list[str], now: datetime) -> None:
    """The step a deadline asked for was done: stop its timers."""
    if not rules:
        return
    await deps.store.cases.update_one(
        {"_id": case["_id"]}, {"$set": {f"deadlines.{deadline_key(r)}.met_at": now for r in rules}}
    )
    for rule in rules:
        await cancel_timers(deps, case["_id"], rule, case["deadlines"][deadline_key(rule)]["due"])


# --- routed cases -------------------------------------------------------------------------------------


async def on_routed(body: bytes, deps: FollowUp, now: datetime) -> None:
    routed = parse_event(body, CaseRouted, max_bytes=deps.max_bytes)
    p = routed.payload
    on = local_date(routed.occurred_at)
    deadlines = deadlines_on_routing(p.unit, p.category, routed.source_channel.value, on, deps.cal)
    if not deadlines:  # no limit starts at routing for this unit and channel: nothing to read or write
        return
    async with deps.store.exclusive(routed.case_id):  # a desk's action on the case may be running too
        case = await deps.store.get_case(routed.case_id)
        if case is None:
            raise Rejected("unknown_case", f"no case {routed.case_id}")
        await open_deadlines(deps, case, deadlines, now)


async def ensure_routing_deadlines(deps: FollowUp, case: Document, now: datetime) -> Document:
    """A desk may act before the routed event reaches the follow-up (they travel on different topics):
    open the routing deadlines first, so the action meets them rather than racing them."""
    if not case.get("unit") or not case.get("routed_at"):
        return case
    deadlines = deadlines_on_routing(Unit(case["unit"]), Category(case.get("category", "other")), case["channel"],
                                     local_date(case["routed_at"]), deps.cal)
    if all(deadline_key(d.rule) in (case.get("deadlines") or {}) for d in deadlines):
        return case
    await open_deadlines(deps, case, deadlines, now)
    return await deps.store.get_case(case["_id"]) or case


# --- desk actions -------------------------------------------------------------------------------------


async def on_desk_action(body: bytes, deps: FollowUp, now: datetime) -> str:
    """Check the action against the case's state, apply it, record the outcome; returns the outcome."""
    event = parse_event(body, DeskAction, max_bytes=deps.max_bytes)
    async with deps.store.exclusive(event.case_id):  # its routed event or a timer may be at the case too
        return await _apply_desk_action(event, deps, now)


async def _apply_desk_action(event: DeskAction, deps: FollowUp, now: datetime) -> str:
    p = event.payload
    case = await deps.store.get_case(event.case_id)
    base = {"case_id": event.case_id, "unit": p.unit.value, "action": p.action.value, "actor": p.actor, "at": now}

    if case is None:
        transition: Transition | None = None
        decided = await deps.store.record_action(event.event_id, {**base, "outcome": "rejected",
                                                                  "reason": "no such case"})
    else:
        case = await ensure_routing_deadlines(deps, case, now)
        view = CaseView(status=case["status"], unit=case.get("unit"),
                        extension_used=bool(case.get("extension_used")))
        try:
            transition = check_desk_action(view, unit=p.unit.value, action=p.action, reason=p.reason,
                                           satisfaction=p.satisfaction)
            record = {**base, "outcome": "applying", "before": transition.before.value,
                      "after": transition.after.value}
        except TransitionRejected as rejected:
            transition, record = None, {**base, "outcome": "rejected", "reason": str(rejected)}
        decided = await deps.store.record_action(event.event_id, record)

    if decided["outcome"] == "rejected":
        if case is not None:
            await deps.store.record(event.case_id, f"action:{event.event_id}", now, "action_rejected",
                                    action=p.action.value, unit=p.unit.value, reason=decided["reason"])
        DESK_ACTIONS.labels(p.unit.value, p.action.value, "rejected").inc()
        return "rejected"

    assert case is not None
    # The decision stands as first recorded, even when this is a redelivery after the status moved on.
    transition = Transition(action=p.action, before=decided["before"], after=decided["after"])
    entry_id = f"action:{event.event_id}"
    entry = timeline_entry(entry_id, now, p.action.value, unit=p.unit.value, before=transition.before.value,
                           after=transition.after.value, **({"note": p.note} if p.note else {}),
                           **({"reason": p.reason} if p.reason else {}),
                           **({"satisfaction": p.satisfaction.value} if p.satisfaction else {}))
    applied = await deps.store.advance(event.case_id, {transition.before}, transition.after,
                                       _fields_for(event, case, transition), op_id=event.event_id, entry=entry,
                                       guard={"unit": p.unit.value})
    current = await deps.store.get_case(event.case_id)
    assert current is not None
    if not applied and entry_id not in current.get("timeline_ids", []):
        reason = f"the case changed meanwhile (now {current['status']} with {current.get('unit')})"
        await deps.store.update_action(event.event_id, {"outcome": "rejected", "reason": reason})
        DESK_ACTIONS.labels(p.unit.value, p.action.value, "rejected").inc()
        return "rejected"

    await _after(event, current, deps, now)
    await deps.store.update_action(event.event_id, {"outcome": "applied"})
    if applied:
        DESK_ACTIONS.labels(p.unit.value, p.action.value, "applied").inc()
    return "applied"


def _fields_for(event: DeskAction, case: Document, t: Transition) -> dict[str, Any]:
    p = event.payload
    now = event.occurred_at
    fields: dict[str, Any] = {"updated_at": now}
    match p.action:
        case Action.ACCEPT:
            fields["accepted_at"] = now
        case Action.HAND_BACK:
            fields["excluded_units"] = sorted({*case.get("excluded_units", []), p.unit.value})
            fields["handback_reason"] = p.reason
        case Action.REQUEST_EXTENSION:
            fields["extension_used"] = True
        case Action.RECORD_AGREEMENT:
            fields["agreement"] = {"note": p.note, "at": now}
        case Action.RESOLVE:
            fields["resolved_at"] = now
        case Action.RETURN_VISIT:
            fields["satisfaction"] = p.satisfaction.value if p.satisfaction else None
            if t.after is CaseStatus.CLOSED:
                fields["closed_at"] = now
            else:
                fields["reopen_count"] = int(case.get("reopen_count", 0)) + 1
        case Action.ESCALATE:
            fields.update(unit=Unit.COMMAND.value, escalated_from=p.unit.value, escalated_at=now)
    return fields


async def _after(event: DeskAction, case: Document, deps: FollowUp, now: datetime) -> None:
    """The consequences of an applied action; each is idempotent."""
    p = event.payload
    today = local_date(now)
    match p.action:
        case Action.ACCEPT:
            await meet_deadlines(deps, case, [r for r in _open_rules(case) if r == "visitor.accept"], now)
            category = Category(case.get("category", "other"))
            await open_deadlines(deps, case, deadlines_on_acceptance(p.unit, category, today, deps.cal), now)
        case Action.RESOLVE:
            await meet_deadlines(deps, case, _open_rules(case), now)
        case Action.HAND_BACK:
            # The citizen's 12345 clock keeps running across re-routing; the unit's own limits do not.
            await meet_deadlines(deps, case, [r for r in _open_rules(case) if not r.startswith("hotline.")], now)
            assessment = await deps.store.get_assessment(case["_id"])
            if assessment is None and case.get("assessment"):  # classified before assessments moved out
                assessment = assessment_from_document(case["assessment"])
            if assessment is None:
                raise Rejected("assessment_missing", f"case {case['_id']} has no stored assessment to route again")
            await deps.reroute(event.follow_up(CaseClassified, CaseClassifiedPayload(
                assessment=assessment,
                routing_attempt=int(case.get("routing_attempt", 0)) + 1,
                excluded_units=[Unit(u) for u in case.get("excluded_units", [])],
                handback_reason=p.reason,
            ), "reroute"))
        case Action.REQUEST_EXTENSION:
            await extend_visitor_deadline(deps, case, p.extension_days, now)
        case Action.ESCALATE:
            await deps.to_desk(_routed_to(case, Unit.COMMAND, "desk_escalation", event.event_id))
        case _:
            pass


def _routed_to(case: Document, unit: Unit, why: str, cause_id: str) -> CaseRouted:
    """The event that puts a case in a desk's queue outside normal routing (an escalation)."""
    urgency = Urgency(case.get("urgency", "normal")).raised()
    decision = RoutingDecision(unit=unit, urgency=urgency, override=why, reasons=[])
    return CaseRouted(
        event_id=derive_event_id(cause_id, "escalated"),
        case_id=case["_id"],
        source_channel=Channel(case["channel"]),
        payload=CaseRoutedPayload(
            unit=unit, category=Category(case.get("category", "other")), urgency=urgency,
            risk_flags=case.get("risk_flags", []), decision=decision,
            routing_attempt=int(case.get("routing_attempt", 0)), text=case.get("text", ""),
            location=case.get("location"), received_at=case["received_at"],
        ),
    )


# --- timers -------------------------------------------------------------------------------------------

_ESCALATABLE = {CaseStatus.ROUTED, CaseStatus.ACCEPTED, CaseStatus.IN_PROGRESS, CaseStatus.REOPENED}


_FINISHED = {"fired", "skipped", "cancelled"}




async def fire_due_timers(deps: FollowUp, now: datetime, real_now: datetime, owner: str, lease: float) -> int:
    """Fire every timer due by `now`; returns how many fired. Safe to run in several instances at once.

    Timers are filed by the day they fall due; a cursor remembers the earliest day with unfinished ones,
    so a scan reads a few documents by key instead of searching the whole collection."""
    cursor = await deps.store.timer_cursor()
    if cursor is None:
        return 0
    today, day, fired, movable = local_date(now), date.fromisoformat(cursor), 0, True
    while day <= today:
        key, unfinished = day.isoformat(), False
        timers, done = await deps.store.timers_on(key)
        for tid in timers:
            if tid in done:
                continue
            timer = await deps.store.get_timer(tid)
            if timer is None or timer["state"] in _FINISHED:
                await deps.store.mark_timer_done(key, tid)
                continue
            if timer["due_at"] > now or not await deps.store.claim_timer(
                tid, owner, real_now, real_now + timedelta(seconds=lease)
            ):
                unfinished = True  # due later today, or held by an instance whose lease still runs
                continue
            timer = await deps.store.get_timer(tid)  # another instance may have finished it meanwhile
            if timer is None or timer["state"] in _FINISHED:
                await deps.store.release_timer(tid)
                continue
            async with deps.store.exclusive(timer["case_id"]):
                outcome = await _fire(deps, timer, now)
            await deps.store.finish_timer(timer, outcome, now)
            TIMERS_FIRED.labels(f"{timer['kind']}:{outcome}").inc()
            fired += outcome == "fired"
        # Timers are filed under the filer's today or later, never an earlier day. The cursor leaves a day
        # only once the next one has passed too, so a timer filed late on a day is there to be found.
        movable = movable and not unfinished and day < today - timedelta(days=1)
        if movable:
            await deps.store.move_timer_cursor(key, (day + timedelta(days=1)).isoformat())
        day += timedelta(days=1)
    return fired


async def _fire(deps: FollowUp, timer: Document, now: datetime) -> str:
    case = await deps.store.get_case(timer["case_id"])
    deadline = ((case or {}).get("deadlines") or {}).get(deadline_key(timer["rule"]))
    if case is None or deadline is None or deadline.get("met_at") or deadline.get("due") != timer["due"]:
        return "skipped"  # the step was done, or the deadline was extended: this timer no longer applies
    status = CaseStatus(case["status"])
    if status in {CaseStatus.RESOLVED, CaseStatus.RETURN_VISIT, CaseStatus.CLOSED}:
        return "skipped"
    kind = TimerKind(timer["kind"])
    unit = Unit(case.get("unit") or "command")
    case_id, tid = case["_id"], str(timer["_id"]).replace(":", ".")
    alert_kind = {TimerKind.REMIND: AlertKind.REMINDER, TimerKind.OVERDUE: AlertKind.OVERDUE,
                  TimerKind.ESCALATE: AlertKind.ESCALATED}[kind]
    if kind is TimerKind.ESCALATE and (unit is Unit.COMMAND or status not in _ESCALATABLE):
        alert_kind = AlertKind.OVERDUE  # nowhere higher to send it: keep it loud on its desk
    entry = timeline_entry(f"timer:{timer['_id']}", now, alert_kind.value, rule=timer["rule"], due=timer["due"],
                           unit=unit.value)

    if alert_kind is AlertKind.ESCALATED:
        await deps.store.advance(case_id, {status}, CaseStatus.ESCALATED, {
            "unit": Unit.COMMAND.value, "escalated_from": unit.value, "escalated_at": now,
        }, op_id=tid, entry=entry)
        moved = await deps.store.get_case(case_id)
        if moved and entry["id"] in moved.get("timeline_ids", []):  # escalated now, or by an earlier attempt
            await deps.to_desk(_routed_to(case, Unit.COMMAND, "overdue_escalation", tid))
    else:
        overdue = {"$set": {"overdue": True, "overdue_since": now}, "$addToSet": {"overdue_rules": timer["rule"]}}
        await deps.store.update_recording(case_id, entry, overdue if kind is TimerKind.OVERDUE else {})
    await deps.alert(CaseAlert(
        event_id=derive_event_id(tid, "alert"), case_id=case_id, source_channel=Channel(case["channel"]),
        payload=CaseAlertPayload(kind=alert_kind, unit=unit, rule=timer["rule"], due=timer["due"]),
    ))
    return "fired"

