"""The case lifecycle as a state machine: which action may move a case from which status, to where.

received → classified → routed → accepted → in progress → resolved → return visit → closed,
with returned (handed back and re-routed), escalated (to the town command centre), reopened
(the complainant is not satisfied). A repeat report does not change the status: it is merged.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel


class CaseStatus(StrEnum):
    RECEIVED = "received"
    CLASSIFIED = "classified"
    ROUTED = "routed"
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    RETURN_VISIT = "return_visit"
    CLOSED = "closed"
    RETURNED = "returned"
    ESCALATED = "escalated"
    REOPENED = "reopened"


class Action(StrEnum):
    CLASSIFY = "classify"
    ROUTE = "route"
    ACCEPT = "accept"
    PROGRESS_NOTE = "progress_note"
    HAND_BACK = "hand_back"
    REQUEST_EXTENSION = "request_extension"
    RECORD_AGREEMENT = "record_agreement"
    RESOLVE = "resolve"
    START_RETURN_VISIT = "start_return_visit"
    RETURN_VISIT = "return_visit"
    ESCALATE = "escalate"


S = CaseStatus
_WORKING = frozenset({S.ACCEPTED, S.IN_PROGRESS})
OPEN_STATUSES = frozenset(S) - {S.CLOSED}

# action → (statuses it may start from, status it leads to; None keeps the status)
TRANSITIONS: dict[Action, tuple[frozenset[CaseStatus], CaseStatus | None]] = {
    Action.CLASSIFY: (frozenset({S.RECEIVED}), S.CLASSIFIED),
    Action.ROUTE: (frozenset({S.CLASSIFIED, S.RETURNED}), S.ROUTED),
    Action.ACCEPT: (frozenset({S.ROUTED, S.ESCALATED, S.REOPENED}), S.ACCEPTED),
    Action.PROGRESS_NOTE: (_WORKING, S.IN_PROGRESS),
    Action.HAND_BACK: (frozenset({S.ROUTED, S.ACCEPTED}), S.RETURNED),
    Action.REQUEST_EXTENSION: (_WORKING, None),
    Action.RECORD_AGREEMENT: (_WORKING, S.IN_PROGRESS),
    Action.RESOLVE: (_WORKING, S.RESOLVED),
    Action.START_RETURN_VISIT: (frozenset({S.RESOLVED}), S.RETURN_VISIT),
    Action.RETURN_VISIT: (frozenset({S.RESOLVED, S.RETURN_VISIT}), None),  # closes or reopens
    Action.ESCALATE: (frozenset({S.ROUTED, S.ACCEPTED, S.IN_PROGRESS, S.REOPENED}), S.ESCALATED),
}


class TransitionRejected(ValueError):
    """The action is not allowed in the case's current status."""

    def __init__(self, action: Action, status: CaseStatus, why: str = "") -> None:
        allowed = ", ".join(sorted(TRANSITIONS[action][0]))
        self.action, self.status = action, status
        super().__init__(why or f"cannot {action.value} a case that is {status.value} (allowed from: {allowed})")


class Satisfaction(StrEnum):
    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    DISSATISFIED = "dissatisfied"


class Transition(BaseModel):
    action: Action
    before: CaseStatus
    after: CaseStatus


def apply(status: CaseStatus, action: Action, satisfaction: Satisfaction | None = None) -> Transition:
    """The status after `action`, or TransitionRejected with the reason."""
    allowed_from, target = TRANSITIONS[action]
    if status not in allowed_from:
        raise TransitionRejected(action, status)
    if action is Action.RETURN_VISIT:
        if satisfaction is None:
            raise TransitionRejected(action, status, "a return visit must record the satisfaction")
        target = S.REOPENED if satisfaction is Satisfaction.DISSATISFIED else S.CLOSED
    return Transition(action=action, before=status, after=target or status)


# What a desk may do to a case; the pipeline's own steps (classify, route, start_return_visit) are not.
DESK_ACTIONS = frozenset({
    Action.ACCEPT, Action.PROGRESS_NOTE, Action.HAND_BACK, Action.REQUEST_EXTENSION, Action.RECORD_AGREEMENT,
    Action.RESOLVE, Action.RETURN_VISIT, Action.ESCALATE,
})


class CaseView(BaseModel):
    """What the desk-action rules need to know about a case."""

    status: CaseStatus
    unit: str | None = None
    extension_used: bool = False


def check_desk_action(
    case: CaseView,
    *,
    unit: str,
    action: Action,
    reason: str | None = None,
    satisfaction: Satisfaction | None = None,
    answer: str | None = None,
) -> Transition:
    """Whether a desk may take this action on this case now; TransitionRejected says why not."""
    if action not in DESK_ACTIONS:
        raise TransitionRejected(action, case.status, f"{action.value} is a step of the pipeline, not a desk action")
    if case.unit != unit:
        raise TransitionRejected(action, case.status, f"the case is with {case.unit}, not {unit}")
    if action in (Action.HAND_BACK, Action.REQUEST_EXTENSION) and not (reason and reason.strip()):
        raise TransitionRejected(action, case.status, f"{action.value} needs a reason")
    if action is Action.RESOLVE and not (answer and answer.strip()):
        raise TransitionRejected(action, case.status, "resolve needs the answer given to the complainant (note)")
    if action is Action.REQUEST_EXTENSION:
        if unit != "visitor":
            raise TransitionRejected(action, case.status, "only petitions (visitor cases) can be extended")
        if case.extension_used:
            raise TransitionRejected(action, case.status, "the handling period was already extended once")
    if action is Action.RECORD_AGREEMENT and unit != "mediation":
        raise TransitionRejected(action, case.status, "only the mediation centre records mediation agreements")
    if action is Action.ESCALATE and unit == "command":
        raise TransitionRejected(action, case.status, "the town command centre is where escalations go")
    return apply(case.status, action, satisfaction)
