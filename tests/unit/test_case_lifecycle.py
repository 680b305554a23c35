"""The case state machine."""

from __future__ import annotations

import pytest

from shared.domain.lifecycle import Action, CaseStatus, Satisfaction, TransitionRejected, apply

S = CaseStatus


def walk(*steps: Action | tuple[Action, Satisfaction]) -> CaseStatus:
    status = S.RECEIVED
    for step in steps:
        action, satisfaction = step if isinstance(step, tuple) else (step, None)
        status = apply(status, action, satisfaction).after
    return status


def test_the_closed_loop() -> None:
    assert walk(Action.CLASSIFY, Action.ROUTE, Action.ACCEPT, Action.PROGRESS_NOTE, Action.RESOLVE,
                Action.START_RETURN_VISIT, (Action.RETURN_VISIT, Satisfaction.SATISFIED)) is S.CLOSED


def test_dissatisfied_reopens_and_the_case_can_be_worked_again() -> None:
    status = walk(Action.CLASSIFY, Action.ROUTE, Action.ACCEPT, Action.RESOLVE,
                  (Action.RETURN_VISIT, Satisfaction.DISSATISFIED))
    assert status is S.REOPENED
    assert apply(status, Action.ACCEPT).after is S.ACCEPTED


def test_hand_back_returns_the_case_for_rerouting() -> None:
    status = walk(Action.CLASSIFY, Action.ROUTE, Action.HAND_BACK)
    assert status is S.RETURNED
    assert apply(status, Action.ROUTE).after is S.ROUTED


def test_escalation_then_acceptance_by_the_command_centre() -> None:
    status = walk(Action.CLASSIFY, Action.ROUTE, Action.ESCALATE)
    assert status is S.ESCALATED
    assert apply(status, Action.ACCEPT).after is S.ACCEPTED


def test_extension_keeps_the_status() -> None:
    assert apply(S.IN_PROGRESS, Action.REQUEST_EXTENSION).after is S.IN_PROGRESS


@pytest.mark.parametrize(("status", "action"), [
    (S.RECEIVED, Action.RESOLVE),
    (S.ROUTED, Action.RESOLVE),
    (S.CLOSED, Action.ACCEPT),
    (S.RESOLVED, Action.HAND_BACK),
    (S.CLOSED, Action.ESCALATE),
])
def test_actions_the_state_does_not_allow_are_rejected_with_a_reason(status: CaseStatus, action: Action) -> None:
    with pytest.raises(TransitionRejected, match=f"cannot {action.value}"):
        apply(status, action)


def test_a_return_visit_must_say_how_satisfied() -> None:
    with pytest.raises(TransitionRejected, match="satisfaction"):
        apply(S.RESOLVED, Action.RETURN_VISIT)
