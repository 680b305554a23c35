"""What an upstream system hears of its case: November's five cases (tests/unit/test_figures.py) read as
milestones, in order, with the answer, the evaluation and the due date where they belong, ids that repeat."""

from __future__ import annotations

from shared.domain.milestones import milestones_of
from shared.events import Channel, Milestone
from tests.unit.test_figures import november

M = Milestone


def story_milestones(index: int) -> list[tuple[Milestone, str | None]]:
    story = november()[index]
    updates = milestones_of(story.case.id, Channel(story.case.channel), "T-1", story.timeline)
    return [(u.payload.milestone, u.payload.unit.value if u.payload.unit else None) for u in updates]


def test_a_case_settled_and_visited_satisfied() -> None:
    story = november()[0]
    updates = milestones_of(story.case.id, Channel.HOTLINE_12345, "12345-0001", story.timeline)
    assert [u.payload.milestone for u in updates] == [M.RECEIVED, M.ROUTED, M.ACCEPTED, M.RESOLVED,
                                                       M.RETURN_VISIT, M.CLOSED]
    routed, resolved, visit = updates[1].payload, updates[3].payload, updates[4].payload
    assert routed.unit is not None and routed.unit.value == "mediation" and routed.due is not None  # 12345's limit
    assert resolved.answer == "已调解"
    assert (visit.satisfaction, visit.solved) == ("satisfied", True)
    assert all(u.payload.external_ref == "12345-0001" and u.case_id == "GT-A" for u in updates)
    again = milestones_of(story.case.id, Channel.HOTLINE_12345, "12345-0001", story.timeline)
    assert [u.event_id for u in again] == [u.event_id for u in updates]  # the same timeline, the same ids
    assert len({u.event_id for u in updates}) == len(updates)


def test_a_dissatisfied_visit_reopens_and_the_case_is_worked_again() -> None:
    assert [m for m, _ in story_milestones(1)] == [
        M.RECEIVED, M.ROUTED, M.ACCEPTED, M.RESOLVED, M.RETURN_VISIT, M.REOPENED, M.ACCEPTED, M.RESOLVED,
        M.RETURN_VISIT, M.CLOSED]


def test_a_hand_back_is_heard_and_so_is_where_the_case_went_next() -> None:
    assert story_milestones(2) == [(M.RECEIVED, None), (M.ROUTED, "police"), (M.ACCEPTED, "police"),
                                   (M.HANDED_BACK, "police"), (M.REROUTED, "command"), (M.ACCEPTED, "command"),
                                   (M.RESOLVED, "command")]


def test_an_escalation_goes_to_the_command_centre_and_repeats_are_not_milestones() -> None:
    assert story_milestones(3) == [(M.RECEIVED, None), (M.ROUTED, "visitor"), (M.ESCALATED, "command"),
                                   (M.ACCEPTED, "command")]
