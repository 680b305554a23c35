"""The case: what the platform knows of one matter, and what each step of its life does to it.

Every step is a method. It checks that the step is allowed now (the lifecycle's state machine), changes
the case and returns a `Change`: the fields it set, the timeline entries it added, the deadlines it opened
or moved (whose timers must be scheduled) and the events to publish. No I/O happens here: the handler
saves the change through the case repository, which makes the save conditional on the version it loaded,
and publishes the events.

Every step is keyed by its cause (a timeline entry's id derives from the event that caused it), so a
redelivered event changes nothing and gets its events back to publish again, with the same ids.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.case_events import alert_event, escalated_event, received_event, reroute_event, routed_event
from shared.domain.change import Change, Matter, OpenDeadline, TimelineEntry, deadline_key
from shared.domain.deadlines import Deadline, extend
from shared.domain.followup import TimerKind, TimerSpec, deadlines_on_acceptance, deadlines_on_routing
from shared.domain.lifecycle import (
    Action,
    CaseStatus,
    CaseView,
    Satisfaction,
    TransitionRejected,
    apply,
    check_desk_action,
)
from shared.domain.repeats import RepeatMatch
from shared.domain.triage import Assessment, Category, RiskFlag, RoutingDecision, Unit, Urgency
from shared.domain.workdays import Calendar, local_date
from shared.events import AlertKind, CaseClassified, ChannelEvent, DeskAction, Envelope, receipt_of

S = CaseStatus
FINISHED = frozenset({S.RESOLVED, S.RETURN_VISIT, S.CLOSED})  # no timer bites a case that is done
_ESCALATABLE = frozenset({S.ROUTED, S.ACCEPTED, S.IN_PROGRESS, S.REOPENED})


class Case(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    status: CaseStatus = S.RECEIVED
    version: int = 0
    channel: str
    text: str
    location: str | None = None
    external_ref: str | None = None
    complainant: dict[str, str] | None = None
    complainant_key: str | None = None
    occurred_at: datetime | None = None
    received_at: datetime
    repeat_count: int = 0
    risk_flags: list[RiskFlag] = Field(default_factory=list)
    matter: Matter | None = None
    linked_cases: list[str] = Field(default_factory=list)
    # classification
    assessment: Assessment | None = None
    category: Category | None = None
    confidence: float | None = None
    urgency: Urgency | None = None
    needs_review: bool = False
    classified_at: datetime | None = None
    # routing: `routings` keeps each attempt's decision, so a replay routes as the first time did
    unit: Unit | None = None
    routing: RoutingDecision | None = None
    routings: dict[str, RoutingDecision] = Field(default_factory=dict)
    routing_attempt: int = 0
    routed_at: datetime | None = None
    excluded_units: list[Unit] = Field(default_factory=list)
    handback_reason: str | None = None
    # the desks' work
    accepted_at: datetime | None = None
    extension_used: bool = False
    agreement: dict[str, Any] | None = None
    resolved_at: datetime | None = None
    satisfaction: Satisfaction | None = None
    closed_at: datetime | None = None
    reopen_count: int = 0
    escalated_from: Unit | None = None
    escalated_at: datetime | None = None
    updated_at: datetime | None = None
    # time limits
    deadlines: dict[str, OpenDeadline] = Field(default_factory=dict)
    overdue: bool = False
    overdue_since: datetime | None = None
    overdue_rules: list[str] = Field(default_factory=list)
    timeline_ids: list[str] = Field(default_factory=list)

    # --- the parts of a step -------------------------------------------------------------------------

    def _set(self, change: Change, **values: Any) -> None:
        for name, value in values.items():
            setattr(self, name, value)
        change.fields.update(values)

    def _record(self, change: Change, entry_id: str, at: datetime, kind: str, **detail: Any) -> None:
        self.timeline_ids.append(entry_id)
        change.entries.append(TimelineEntry(id=entry_id, at=at, kind=kind, detail=detail))

    def has(self, entry_id: str) -> bool:
        return entry_id in self.timeline_ids

    def _open(self, change: Change, deadlines: list[Deadline], now: datetime) -> None:
        """Put deadlines on the case, each rule once."""
        fresh = [d for d in deadlines if deadline_key(d.rule) not in self.deadlines]
        for d in fresh:
            self.deadlines[deadline_key(d.rule)] = OpenDeadline(
                rule=d.rule, start=d.start.isoformat(), due=d.due.isoformat(), source=d.source, opened_at=now)
            self._record(change, f"deadline:{d.rule}:{d.due.isoformat()}", now, "deadline_opened", rule=d.rule,
                         due=d.due.isoformat(), source=d.source)
        if fresh:
            change.fields.add("deadlines")
            change.deadlines.extend(fresh)

    def open_rules(self) -> list[str]:
        return [d.rule for d in self.deadlines.values() if d.is_open]

    def _meet(self, change: Change, rules: list[str], now: datetime) -> None:
        """The step a deadline asked for was done: its timers no longer bite (they check on firing)."""
        for rule in rules:
            self.deadlines[deadline_key(rule)].met_at = now
        if rules:
            change.fields.add("deadlines")

    # --- the pipeline --------------------------------------------------------------------------------

    @classmethod
    def receive(cls, event: ChannelEvent, *, case_id: str, text: str, complainant_key: str | None,
                now: datetime, matter: Matter | None = None) -> tuple[Case, Change]:
        """A new case from one matter of a channel event."""
        case = cls(
            id=case_id, channel=event.channel.value, text=text, location=event.location,
            external_ref=event.external_ref,
            complainant=event.complainant.model_dump(exclude_none=True) if event.complainant else None,
            complainant_key=complainant_key, occurred_at=event.occurred_at, received_at=now, matter=matter,
        )
        change = Change()
        case._record(change, f"received:{receipt_of(event)}", now, "received", channel=case.channel)
        change.events.append(received_event(case, event))
        return case, change

    def merge_repeat(self, event: ChannelEvent, now: datetime, match: RepeatMatch | None) -> Change:
        """Another report of this open case: count it once, flag it, and raise the urgency a step."""
        change = Change()
        entry_id = f"merged:{receipt_of(event)}"
        if self.has(entry_id):
            return change
        flags = self.risk_flags if RiskFlag.REPEATED in self.risk_flags else [*self.risk_flags, RiskFlag.REPEATED]
        self._set(change, repeat_count=self.repeat_count + 1, risk_flags=flags)
        if self.urgency is not None:
            self._set(change, urgency=self.urgency.raised())
        self._record(change, entry_id, now, "merged", channel=event.channel.value, repeat_count=self.repeat_count,
                     similarity=round(match.similarity, 2) if match else None,
                     match=match.reason.value if match else None)
        return change

    def link(self, receipt: str, others: list[str], now: datetime) -> Change:
        """Name the other cases split from the same complaint."""
        change = Change()
        entry_id = f"linked:{receipt}"
        if self.has(entry_id) or not others:
            return change
        self._set(change, linked_cases=list(dict.fromkeys([*self.linked_cases, *others])))
        self._record(change, entry_id, now, "linked", cases=others)
        return change

    def classify(self, assessment: Assessment, now: datetime, cause_id: str) -> Change:
        """Record what the classifier concluded. Repeats merged before it read the case keep their flag."""
        change = Change()
        if self.status is not S.RECEIVED:
            return change  # classified already: the first assessment stands
        apply(self.status, Action.CLASSIFY)
        flags = list(dict.fromkeys([*assessment.risk_flags, *self.risk_flags]))
        self._set(change, status=S.CLASSIFIED, assessment=assessment, category=assessment.category,
                  confidence=round(assessment.confidence, 3), urgency=assessment.urgency, risk_flags=flags,
                  needs_review=assessment.needs_review, classified_at=now)
        self._record(change, f"classified:{cause_id}", now, "classified", category=assessment.category.value,
                     urgency=assessment.urgency.value, confidence=self.confidence)
        return change

    def route(self, decision: RoutingDecision, cause: CaseClassified, now: datetime, calendar: Calendar) -> Change:
        """Hand the case to a unit and open the limits that start there. Each attempt is decided once: a
        replay keeps the unit of the first decision, whatever the policy says now."""
        change = Change()
        attempt = cause.payload.routing_attempt
        first = self.routings.get(str(attempt))
        if first is None:
            apply(self.status, Action.ROUTE)
            self.routings[str(attempt)] = decision
            self._set(change, status=S.ROUTED, unit=decision.unit, urgency=decision.urgency, routing=decision,
                      routings=self.routings, routing_attempt=attempt, routed_at=now,
                      needs_review=decision.needs_review or cause.payload.assessment.needs_review)
            self._record(change, f"routed:{attempt}", now, "routed", unit=decision.unit.value,
                         override=decision.override, attempt=attempt)
            self._open(change, deadlines_on_routing(decision.unit, self.category or cause.payload.assessment.category,
                                                    self.channel, local_date(now), calendar), now)
        routing = first or decision
        opened = [d for d in self.deadlines.values() if d.opened_at == self.routed_at]
        change.events.append(routed_event(self, cause, routing, attempt, opened))
        if routing.alert_command:  # a critical case with a unit that cannot act at once
            change.events.append(alert_event(self, cause.event_id, f"critical{attempt}", AlertKind.CRITICAL_ELSEWHERE,
                                             Unit.COMMAND, "routing.critical_not_immediate",
                                             local_date(self.received_at).isoformat(), cause.traceparent))
        return change

    # --- the desks' work -----------------------------------------------------------------------------

    def check(self, action: DeskAction) -> None:
        """Whether the desk may take this action now; TransitionRejected says why not."""
        p = action.payload
        view = CaseView(status=self.status, unit=self.unit.value if self.unit else None,
                        extension_used=self.extension_used)
        check_desk_action(view, unit=p.unit.value, action=p.action, reason=p.reason, satisfaction=p.satisfaction,
                          answer=p.note)

    def act(self, action: DeskAction, now: datetime, calendar: Calendar) -> Change:
        """Apply a desk's action (TransitionRejected if it may not be taken now). Applied before: its
        consequences come back to publish again, its effects do not."""
        if self.has(f"action:{action.event_id}"):
            return Change(events=self._consequences(action, replay=True))
        p = action.payload
        match p.action:
            case Action.ACCEPT:
                return self.accept(action, now, calendar)
            case Action.HAND_BACK:
                return self.hand_back(action, now)
            case Action.REQUEST_EXTENSION:
                return self.extend(action, now, calendar)
            case Action.RECORD_AGREEMENT:
                return self.agree(action, now)
            case Action.RESOLVE:
                return self.resolve(action, now)
            case Action.RETURN_VISIT:
                return self.visit(action, now)
            case Action.ESCALATE:
                return self.escalate(action, now)
            case _:  # a progress note: the work has begun, and the timeline says what was done
                return self._step(action, now, lambda change: None)

    def accept(self, action: DeskAction, now: datetime, calendar: Calendar) -> Change:
        """签收: the unit takes the case on; its own handling period starts now."""
        def fields(change: Change) -> None:
            self._set(change, accepted_at=now)
            self._meet(change, [r for r in self.open_rules() if r == "visitor.accept"], now)
            self._open(change, deadlines_on_acceptance(action.payload.unit, self.category or Category.OTHER,
                                                       local_date(now), calendar), now)
        return self._step(action, now, fields)

    def hand_back(self, action: DeskAction, now: datetime) -> Change:
        """退单: not this unit's matter; the case is routed again, never to this unit."""
        def fields(change: Change) -> None:
            # The citizen's 12345 clock keeps running across re-routing; the unit's own limits do not.
            self._meet(change, [r for r in self.open_rules() if not r.startswith("hotline.")], now)
            self._set(change, excluded_units=sorted({*self.excluded_units, action.payload.unit}),
                      handback_reason=action.payload.reason)
        return self._step(action, now, fields)

    def extend(self, action: DeskAction, now: datetime, calendar: Calendar) -> Change:
        """延期: the one extension a petition may have; its resolve limit moves, and its timers with it."""
        def fields(change: Change) -> None:
            self._set(change, extension_used=True)
            self._extend(change, action.payload.extension_days, now, calendar)
        return self._step(action, now, fields)

    def agree(self, action: DeskAction, now: datetime) -> Change:
        """A mediation agreement (调解协议) is recorded."""
        p = action.payload
        agreement = {"note": p.note, "amount": str(p.amount) if p.amount is not None else None, "at": now}
        return self._step(action, now, lambda change: self._set(change, agreement=agreement))

    def resolve(self, action: DeskAction, now: datetime) -> Change:
        """办结: done; every limit still open is met."""
        def fields(change: Change) -> None:
            self._set(change, resolved_at=now)
            self._meet(change, self.open_rules(), now)
        return self._step(action, now, fields)

    def visit(self, action: DeskAction, now: datetime) -> Change:
        """回访: a satisfied complainant closes the case; a dissatisfied one reopens it."""
        def fields(change: Change) -> None:
            self._set(change, satisfaction=action.payload.satisfaction)
            if self.status is S.CLOSED:
                self._set(change, closed_at=now)
            else:
                self._set(change, reopen_count=self.reopen_count + 1)
        return self._step(action, now, fields)

    def escalate(self, action: DeskAction, now: datetime) -> Change:
        """督办: the case goes to the town command centre."""
        return self._step(action, now, lambda change: self._set(
            change, unit=Unit.COMMAND, escalated_from=action.payload.unit, escalated_at=now))

    def _step(self, action: DeskAction, now: datetime, fields: Callable[[Change], None]) -> Change:
        """Check the action, move the status, set its fields, write it on the timeline, add what it asks of
        others."""
        self.check(action)
        p = action.payload
        transition = apply(self.status, p.action, p.satisfaction)
        change = Change()
        self._set(change, status=transition.after, updated_at=now)
        fields(change)
        detail = {k: v for k, v in (("note", p.note), ("reason", p.reason),
                                    ("satisfaction", p.satisfaction.value if p.satisfaction else None),
                                    ("solved", p.solved), ("amount", str(p.amount) if p.amount is not None else None))
                  if v is not None and v != ""}
        self._record(change, f"action:{action.event_id}", now, p.action.value, unit=p.unit.value, actor=p.actor,
                     before=transition.before.value, after=transition.after.value, **detail)
        change.events.extend(self._consequences(action))
        return change

    def refuse(self, action: DeskAction, reason: str, now: datetime) -> Change:
        """An action that may not be taken is on the timeline too, once."""
        change = Change()
        entry_id = f"refused:{action.event_id}"  # not `action:`, which says it was applied
        if not self.has(entry_id):
            self._record(change, entry_id, now, "action_rejected", action=action.payload.action.value,
                         unit=action.payload.unit.value, actor=action.payload.actor, reason=reason)
        return change

    def _consequences(self, action: DeskAction, replay: bool = False) -> list[Envelope]:
        """What an applied action asks of others: a hand-back is routed again, an escalation reaches the
        command centre's desk. A replayed hand-back publishes again only while the case still waits to be
        routed again (after that, the next attempt has happened)."""
        p = action.payload
        if p.action is Action.HAND_BACK and (not replay or self.status is S.RETURNED):
            if self.assessment is None:
                raise TransitionRejected(p.action, self.status, "the case has no assessment to route it again")
            return [reroute_event(self, action, self.routing_attempt + 1)]
        if p.action is Action.ESCALATE:
            return [escalated_event(self, action.event_id, "desk_escalation")]
        return []

    def _extend(self, change: Change, days: int | None, now: datetime, calendar: Calendar) -> None:
        """The one extension a petition may have: a later due date, and timers that follow it."""
        current = self.deadlines.get(deadline_key("visitor.resolve"))
        if current is None or not current.is_open or current.extended_by:
            return
        original = Deadline(current.rule, date.fromisoformat(current.start), date.fromisoformat(current.due),
                            current.source)
        longer = extend(original, days, calendar)
        current.due, current.extended_by = longer.due.isoformat(), longer.rule
        change.fields.add("deadlines")
        change.deadlines.append(Deadline(original.rule, original.start, longer.due, original.source))
        self._record(change, f"deadline:{original.rule}:{current.due}", now, "deadline_extended",
                     rule=original.rule, due=current.due, source=longer.source)

    def erase_personal_data(self, cause: str, why: str, now: datetime) -> Change:
        """The complainant's name, phone, ID number and keyed phone hash are removed, on their request or at
        the end of the retention period (`why`); the case, its timeline and its figures stay."""
        change = Change()
        entry_id = f"erased:{cause}"
        if self.has(entry_id):
            return change
        self._set(change, complainant=None, complainant_key=None)
        self._record(change, entry_id, now, "personal_data_erased", reason=why)
        return change

    # --- time limits ---------------------------------------------------------------------------------

    def fire(self, timer: TimerSpec, now: datetime) -> Change | None:
        """A timer fell due: remind, mark overdue, or escalate to the command centre. None when it no longer
        applies (the step was done, the limit was extended, the case is finished)."""
        deadline = self.deadlines.get(deadline_key(timer.rule))
        if deadline is None or not deadline.is_open or deadline.due != timer.due or self.status in FINISHED:
            return None
        unit = self.unit or Unit.COMMAND
        kind = {TimerKind.REMIND: AlertKind.REMINDER, TimerKind.OVERDUE: AlertKind.OVERDUE,
                TimerKind.ESCALATE: AlertKind.ESCALATED}[timer.kind]
        entry_id = f"timer:{timer.id}"
        if self.has(entry_id):  # fired before: publish again what it published
            unit = self.escalated_from if kind is AlertKind.ESCALATED and self.escalated_from else unit
            return Change(events=self._alerts(timer, kind, unit))
        if kind is AlertKind.ESCALATED and (unit is Unit.COMMAND or self.status not in _ESCALATABLE):
            kind = AlertKind.OVERDUE  # nowhere higher to send it: keep it loud on its desk
        change = Change()
        if kind is AlertKind.ESCALATED:
            apply(self.status, Action.ESCALATE)
            self._set(change, status=S.ESCALATED, unit=Unit.COMMAND, escalated_from=unit, escalated_at=now)
        elif timer.kind is TimerKind.OVERDUE:
            self._set(change, overdue=True, overdue_since=now,
                      overdue_rules=list(dict.fromkeys([*self.overdue_rules, timer.rule])))
        self._record(change, entry_id, now, kind.value, rule=timer.rule, due=timer.due, unit=unit.value)
        change.events.extend(self._alerts(timer, kind, unit))
        return change

    def _alerts(self, timer: TimerSpec, kind: AlertKind, unit: Unit) -> list[Envelope]:
        cause = timer.id.replace(":", ".")
        events: list[Envelope] = []
        if kind is AlertKind.ESCALATED:
            events.append(escalated_event(self, cause, "overdue_escalation"))
        events.append(alert_event(self, cause, "alert", kind, unit, timer.rule, timer.due))
        return events
