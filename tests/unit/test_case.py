"""The Case aggregate, directly: each step changes what it should, says so in its Change, and a replay of
the same cause changes nothing and publishes the same events again."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from shared.domain.case import Case
from shared.domain.change import Change, Matter
from shared.domain.deadlines import Deadline
from shared.domain.followup import TimerKind, TimerSpec, timers_of
from shared.domain.lifecycle import Action, CaseStatus, Satisfaction, TransitionRejected
from shared.domain.repeats import MatchReason, RepeatMatch
from shared.domain.triage import Assessment, Category, RiskFlag, RoutingDecision, Unit, Urgency
from shared.domain.workdays import default_calendar
from shared.events import (
    AlertKind,
    CaseAlert,
    CaseClassified,
    CaseClassifiedPayload,
    CaseReceived,
    CaseRouted,
    Channel,
    ChannelEvent,
    Complainant,
    DeskAction,
    DeskActionPayload,
)

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # a Tuesday morning in China
CAL = default_calendar()


def channel_event(event_id: str = "ev-1", **extra: Any) -> ChannelEvent:
    return ChannelEvent(event_id=event_id, channel=Channel.HOTLINE_12345, occurred_at=NOW, text="楼上漏水三个月",
                        complainant=Complainant(name="王女士", phone="13800000000"), **extra)


def new_case(**extra: Any) -> Case:
    case, _ = Case.receive(channel_event(), case_id="GT-1", text="楼上漏水三个月", complainant_key="k", now=NOW,
                           **extra)
    return case


def classified(attempt: int = 0, category: Category = Category.NEIGHBOR, excluded: list[Unit] | None = None
               ) -> CaseClassified:
    assessment = Assessment(category=category, urgency=Urgency.NORMAL, confidence=0.9)
    return CaseClassified(event_id=f"ev-1.classified{attempt}", case_id="GT-1", source_channel=Channel.HOTLINE_12345,
                          payload=CaseClassifiedPayload(assessment=assessment, routing_attempt=attempt,
                                                        excluded_units=excluded or []))


def routed_case(unit: Unit = Unit.MEDIATION, category: Category = Category.NEIGHBOR) -> Case:
    case = new_case()
    cause = classified(category=category)
    case.classify(cause.payload.assessment, NOW, cause.event_id)
    case.route(RoutingDecision(unit=unit, urgency=Urgency.NORMAL), cause, NOW, CAL)
    return case


def desk(action: Action, unit: Unit, event_id: str = "da-1", **fields: Any) -> DeskAction:
    return DeskAction(event_id=event_id, case_id="GT-1", source_channel=Channel.HOTLINE_12345,
                      payload=DeskActionPayload(unit=unit, action=action, actor="desk-1", **fields))


def test_receiving_opens_a_case_with_its_first_entry_and_announces_it() -> None:
    case, change = Case.receive(channel_event(), case_id="GT-1", text="楼上漏水三个月", complainant_key="k", now=NOW,
                                matter=Matter(index=1, of=2))
    assert case.status is CaseStatus.RECEIVED and case.matter == Matter(index=1, of=2)
    assert [e.id for e in change.entries] == ["received:12345:ev-1"] == case.timeline_ids
    assert [type(e) for e in change.events] == [CaseReceived]
    assert change.events[0].event_id == "12345:ev-1.received"


def test_a_repeat_counts_once_and_raises_the_urgency_of_a_classified_case() -> None:
    case = routed_case()
    match = RepeatMatch("GT-1", 0.8, MatchReason.SAME_COMPLAINANT)
    first = case.merge_repeat(channel_event("ev-2"), NOW, match)
    assert case.repeat_count == 1 and RiskFlag.REPEATED in case.risk_flags and case.urgency is Urgency.HIGH
    assert first.fields >= {"repeat_count", "risk_flags", "urgency"}
    again = case.merge_repeat(channel_event("ev-2"), NOW, match)
    assert not again.changed and case.repeat_count == 1


def test_classification_keeps_the_flag_of_a_repeat_merged_before_it() -> None:
    case = new_case()
    case.merge_repeat(channel_event("ev-2"), NOW, None)
    cause = classified()
    change = case.classify(cause.payload.assessment, NOW, cause.event_id)
    assert case.status is CaseStatus.CLASSIFIED and RiskFlag.REPEATED in case.risk_flags
    assert "assessment" in change.fields
    assert not case.classify(cause.payload.assessment, NOW, cause.event_id).changed  # the first one stands


def test_routing_opens_the_limits_that_start_there_and_a_replay_keeps_the_first_unit() -> None:
    case = new_case()
    cause = classified()
    case.classify(cause.payload.assessment, NOW, cause.event_id)
    change = case.route(RoutingDecision(unit=Unit.VISITOR, urgency=Urgency.NORMAL), cause, NOW, CAL)
    assert case.status is CaseStatus.ROUTED and case.unit is Unit.VISITOR
    assert {d.rule for d in change.deadlines} == {"visitor.accept", "hotline.complaint"}
    routed = change.events[0]
    assert isinstance(routed, CaseRouted) and {d.rule for d in routed.payload.deadlines} == {
        "visitor.accept", "hotline.complaint"}
    replay = case.route(RoutingDecision(unit=Unit.POLICE, urgency=Urgency.HIGH), cause, NOW, CAL)
    assert not replay.changed and case.unit is Unit.VISITOR
    # The same events again, but for when they are published: a replay is published at a later millisecond.
    assert [e.model_dump(exclude={"occurred_at"}) for e in replay.events] == [
        e.model_dump(exclude={"occurred_at"}) for e in change.events]


def test_a_critical_case_left_elsewhere_alerts_the_command_centre() -> None:
    case = new_case()
    cause = classified()
    case.classify(cause.payload.assessment, NOW, cause.event_id)
    change = case.route(RoutingDecision(unit=Unit.MEDIATION, urgency=Urgency.CRITICAL, alert_command=True),
                        cause, NOW, CAL)
    alerts = [e for e in change.events if isinstance(e, CaseAlert)]
    assert [a.payload.kind for a in alerts] == [AlertKind.CRITICAL_ELSEWHERE]


def test_the_desk_lifecycle_accept_resolve_and_a_dissatisfied_visit_reopens() -> None:
    case = routed_case()
    accepted = case.act(desk(Action.ACCEPT, Unit.MEDIATION), NOW, CAL)
    assert case.status is CaseStatus.ACCEPTED and [d.rule for d in accepted.deadlines] == ["mediation.resolve"]
    case.act(desk(Action.RESOLVE, Unit.MEDIATION, "da-2", note="已调解并答复"), NOW, CAL)
    assert case.status is CaseStatus.RESOLVED and not case.open_rules()
    case.act(desk(Action.RETURN_VISIT, Unit.MEDIATION, "da-3", satisfaction=Satisfaction.DISSATISFIED), NOW, CAL)
    assert case.status is CaseStatus.REOPENED and case.reopen_count == 1
    case.act(desk(Action.ACCEPT, Unit.MEDIATION, "da-4"), NOW, CAL)
    case.act(desk(Action.RESOLVE, Unit.MEDIATION, "da-5", note="已调解并答复"), NOW, CAL)
    case.act(desk(Action.RETURN_VISIT, Unit.MEDIATION, "da-6", satisfaction=Satisfaction.SATISFIED), NOW, CAL)
    assert case.status is CaseStatus.CLOSED and case.closed_at == NOW


def test_resolving_needs_the_answer_and_an_agreement_keeps_its_amount() -> None:
    case = routed_case()
    case.act(desk(Action.ACCEPT, Unit.MEDIATION), NOW, CAL)
    with pytest.raises(TransitionRejected, match="answer"):
        case.act(desk(Action.RESOLVE, Unit.MEDIATION, "da-2", note="  "), NOW, CAL)
    case.act(desk(Action.RECORD_AGREEMENT, Unit.MEDIATION, "da-3", note="分期偿还", amount=Decimal("12000.50")), NOW, CAL)
    assert case.agreement == {"note": "分期偿还", "amount": "12000.50", "at": NOW}
    named = DeskActionPayload(unit=Unit.MEDIATION, action=Action.PROGRESS_NOTE, actor="王调解员")  # an officer's name
    assert named.actor == "王调解员"


def test_an_action_applied_before_changes_nothing_again() -> None:
    case = routed_case()
    first = case.act(desk(Action.ACCEPT, Unit.MEDIATION), NOW, CAL)
    assert first.changed
    assert case.act(desk(Action.ACCEPT, Unit.MEDIATION), NOW + timedelta(hours=1), CAL) == Change()


def test_another_units_action_is_refused_and_written_down_once() -> None:
    case = routed_case()
    with pytest.raises(TransitionRejected, match="mediation, not police"):
        case.act(desk(Action.ACCEPT, Unit.POLICE), NOW, CAL)
    refused = case.refuse(desk(Action.ACCEPT, Unit.POLICE), "not yours", NOW)
    assert [e.kind for e in refused.entries] == ["action_rejected"]
    assert not case.refuse(desk(Action.ACCEPT, Unit.POLICE), "not yours", NOW).changed
    assert case.status is CaseStatus.ROUTED


def test_a_hand_back_asks_for_routing_again_without_that_unit_and_keeps_the_hotline_clock() -> None:
    case = routed_case()
    change = case.act(desk(Action.HAND_BACK, Unit.MEDIATION, reason="不归调解"), NOW, CAL)
    assert case.status is CaseStatus.RETURNED and case.excluded_units == [Unit.MEDIATION]
    reroute = change.events[0]
    assert isinstance(reroute, CaseClassified)
    assert reroute.payload.routing_attempt == 1 and reroute.payload.excluded_units == [Unit.MEDIATION]
    assert case.open_rules() == ["hotline.complaint"]
    replay = case.act(desk(Action.HAND_BACK, Unit.MEDIATION, reason="不归调解"), NOW, CAL)
    assert [e.event_id for e in replay.events] == [reroute.event_id]  # still waiting: published again
    case.route(RoutingDecision(unit=Unit.LEGAL, urgency=Urgency.NORMAL), classified(1, excluded=[Unit.MEDIATION]),
               NOW, CAL)
    assert case.act(desk(Action.HAND_BACK, Unit.MEDIATION, reason="不归调解"), NOW, CAL).events == []


def test_a_petition_is_extended_once_and_its_timers_follow() -> None:
    case = routed_case(Unit.VISITOR, Category.ADMIN_COMPLAINT)
    case.act(desk(Action.ACCEPT, Unit.VISITOR), NOW, CAL)
    due = case.deadlines["visitor_resolve"].due
    change = case.act(desk(Action.REQUEST_EXTENSION, Unit.VISITOR, "da-2", reason="需调档", extension_days=30),
                      NOW, CAL)
    assert case.deadlines["visitor_resolve"].due > due and case.extension_used
    assert [d.due.isoformat() for d in change.deadlines] == [case.deadlines["visitor_resolve"].due]
    with pytest.raises(TransitionRejected, match="already extended"):
        case.act(desk(Action.REQUEST_EXTENSION, Unit.VISITOR, "da-3", reason="再延"), NOW, CAL)


def test_an_escalation_moves_the_case_to_the_command_centres_desk() -> None:
    case = routed_case()
    change = case.act(desk(Action.ESCALATE, Unit.MEDIATION), NOW, CAL)
    assert case.status is CaseStatus.ESCALATED and case.unit is Unit.COMMAND and case.escalated_from is Unit.MEDIATION
    routed = change.events[0]
    assert isinstance(routed, CaseRouted) and routed.payload.unit is Unit.COMMAND


def _timer(case: Case, rule: str, kind: TimerKind) -> TimerSpec:
    return next(t for t in timers_of(case.id, _deadlines(case), CAL) if t.rule == rule and t.kind is kind)


def _deadlines(case: Case) -> list[Deadline]:
    return [Deadline(d.rule, date.fromisoformat(d.start), date.fromisoformat(d.due), d.source)
            for d in case.deadlines.values()]


def test_timers_remind_mark_overdue_and_escalate_once_each() -> None:
    case = routed_case(Unit.VISITOR, Category.ADMIN_COMPLAINT)
    remind = case.fire(_timer(case, "visitor.accept", TimerKind.REMIND), NOW)
    assert remind is not None and [type(e) for e in remind.events] == [CaseAlert] and not case.overdue
    overdue = case.fire(_timer(case, "visitor.accept", TimerKind.OVERDUE), NOW)
    assert overdue is not None and case.overdue and case.overdue_rules == ["visitor.accept"]
    escalated = case.fire(_timer(case, "visitor.accept", TimerKind.ESCALATE), NOW)
    assert escalated is not None and case.status is CaseStatus.ESCALATED and case.unit is Unit.COMMAND
    assert [type(e) for e in escalated.events] == [CaseRouted, CaseAlert]
    again = case.fire(_timer(case, "visitor.accept", TimerKind.ESCALATE), NOW)
    assert again is not None and not again.changed
    assert [e.event_id for e in again.events] == [e.event_id for e in escalated.events]


def test_a_timer_of_a_met_limit_no_longer_applies() -> None:
    case = routed_case(Unit.VISITOR, Category.ADMIN_COMPLAINT)
    timer = _timer(case, "visitor.accept", TimerKind.OVERDUE)
    case.act(desk(Action.ACCEPT, Unit.VISITOR), NOW, CAL)
    assert case.fire(timer, NOW) is None and not case.overdue


def test_erasing_removes_the_complainant_once_and_keeps_the_case() -> None:
    case = routed_case()
    assert case.complainant and case.complainant_key
    change = case.erase_personal_data("request-1", "complainant's request", NOW)
    assert case.complainant is None and case.complainant_key is None
    assert change.fields == {"complainant", "complainant_key"} and change.entries[0].kind == "personal_data_erased"
    assert case.status is CaseStatus.ROUTED and case.text
    assert not case.erase_personal_data("request-1", "complainant's request", NOW).changed  # once per cause
