"""Which time limits a case is held to, and when its timers fire."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from shared.domain.deadlines import deadline
from shared.domain.followup import (
    TimerKind,
    deadlines_on_acceptance,
    deadlines_on_routing,
    hotline_rule,
    timers_for,
)
from shared.domain.lifecycle import Action, CaseStatus, CaseView, TransitionRejected, check_desk_action
from shared.domain.triage import Category, Unit
from shared.domain.workdays import CHINA_TZ


def test_a_petition_must_be_accepted_or_refused_within_15_days() -> None:
    [d] = deadlines_on_routing(Unit.VISITOR, Category.ADMIN_COMPLAINT, "letter", date(2026, 9, 20))
    assert (d.rule, d.due) == ("visitor.accept", date(2026, 10, 8))


def test_a_12345_call_gets_the_hotline_limit_for_its_kind() -> None:
    assert hotline_rule(Category.LEGAL_AID) == "hotline.consult"
    assert hotline_rule(Category.SAFETY_HAZARD) == "hotline.help"
    assert hotline_rule(Category.NEIGHBOR) == "hotline.complaint"
    rules = [d.rule for d in deadlines_on_routing(Unit.MEDIATION, Category.NEIGHBOR, "12345", date(2026, 11, 2))]
    assert rules == ["hotline.complaint"]


def test_acceptance_starts_the_units_own_limit() -> None:
    on = date(2026, 9, 28)
    assert [d.rule for d in deadlines_on_acceptance(Unit.VISITOR, Category.LAND_REQUISITION, on)] == ["visitor.resolve"]
    [aid] = deadlines_on_acceptance(Unit.LEGAL, Category.LEGAL_AID, on)
    assert aid.due == date(2026, 10, 13)
    assert [d.rule for d in deadlines_on_acceptance(Unit.MEDIATION, Category.FAMILY, on)] == ["mediation.resolve"]
    assert deadlines_on_acceptance(Unit.POLICE, Category.FRAUD, on) == []


def test_timers_remind_before_mark_overdue_after_and_escalate_later() -> None:
    d = deadline("legal_aid.decision", date(2026, 9, 28))  # due 2026-10-13, a Tuesday
    timers = {t.kind: t.due_at for t in timers_for(d)}
    assert timers[TimerKind.REMIND] == datetime(2026, 10, 12, 9, tzinfo=CHINA_TZ)
    assert timers[TimerKind.OVERDUE] == datetime(2026, 10, 14, 0, tzinfo=CHINA_TZ)
    assert timers[TimerKind.ESCALATE] == datetime(2026, 10, 15, 9, tzinfo=CHINA_TZ)


def view(status: CaseStatus, unit: str = "visitor", **extra: bool) -> CaseView:
    return CaseView(status=status, unit=unit, **extra)


def test_a_desk_can_only_act_on_its_own_cases() -> None:
    with pytest.raises(TransitionRejected, match="with visitor, not police"):
        check_desk_action(view(CaseStatus.ROUTED), unit="police", action=Action.ACCEPT)


def test_handing_back_needs_a_reason() -> None:
    with pytest.raises(TransitionRejected, match="needs a reason"):
        check_desk_action(view(CaseStatus.ROUTED), unit="visitor", action=Action.HAND_BACK, reason="  ")
    t = check_desk_action(view(CaseStatus.ROUTED), unit="visitor", action=Action.HAND_BACK, reason="属于劳动争议")
    assert t.after is CaseStatus.RETURNED


def test_only_petitions_are_extended_and_only_once() -> None:
    accepted = view(CaseStatus.ACCEPTED)
    assert check_desk_action(accepted, unit="visitor", action=Action.REQUEST_EXTENSION, reason="调档").after \
        is CaseStatus.ACCEPTED
    with pytest.raises(TransitionRejected, match="already extended"):
        check_desk_action(view(CaseStatus.ACCEPTED, extension_used=True), unit="visitor",
                          action=Action.REQUEST_EXTENSION, reason="again")
    with pytest.raises(TransitionRejected, match="only petitions"):
        check_desk_action(view(CaseStatus.ACCEPTED, "mediation"), unit="mediation",
                          action=Action.REQUEST_EXTENSION, reason="more time")


def test_mediation_agreements_belong_to_the_mediation_centre() -> None:
    with pytest.raises(TransitionRejected, match="mediation centre"):
        check_desk_action(view(CaseStatus.ACCEPTED, "legal"), unit="legal", action=Action.RECORD_AGREEMENT)
