"""The supervisors' figures from a November with known answers: five cases worked through the real Case
aggregate, every figure checked against arithmetic done by hand, and the facts read as they were saved
equal to the facts read from the whole timeline afterwards (what `triage stats rebuild` files)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from shared.domain.case import Case
from shared.domain.change import Change, TimelineEntry
from shared.domain.facts import Fact, FactKind, facts_of_case, facts_of_change
from shared.domain.figures import (
    DEFAULT_FLOORS,
    Figure,
    Measure,
    Period,
    Ratio,
    Tally,
    below_floors,
    change,
    figures_of,
    trend_periods,
)
from shared.domain.followup import TimerKind, TimerSpec
from shared.domain.lifecycle import Action, Satisfaction
from shared.domain.triage import Assessment, Category, RoutingDecision, Unit, Urgency
from shared.domain.workdays import default_calendar
from shared.events import (
    CaseClassified,
    CaseClassifiedPayload,
    Channel,
    ChannelEvent,
    DeskAction,
    DeskActionPayload,
)

CAL = default_calendar()
NOV = Period.month("2026-11")


def at(day: int, hour: int = 10, month: int = 11) -> datetime:
    """A time in China (UTC+8) on a day of 2026, as UTC."""
    return datetime(2026, month, day, hour, 0, tzinfo=UTC) - timedelta(hours=8)


class Story:
    """One case worked step by step; keeps its whole timeline and the facts each save would file."""

    def __init__(self, case_id: str, channel: Channel, received: datetime) -> None:
        event = ChannelEvent(event_id=f"ev-{case_id}", channel=channel, occurred_at=received, text="纠纷")
        self.case, first = Case.receive(event, case_id=case_id, text="纠纷", complainant_key=None, now=received)
        self.timeline: list[TimelineEntry] = list(first.entries)
        self.saved: list[Fact] = []
        self.steps: list[tuple[Case, Change]] = []  # the case as each save saw it, and what the save added
        self.actions = 0

    def _saved(self, change: Change) -> None:
        self.steps.append((self.case.model_copy(deep=True), change))
        self.timeline.extend(change.entries)
        self.saved.extend(facts_of_change(self.case, change.entries, CAL))

    def route(self, unit: Unit, when: datetime, category: Category = Category.NEIGHBOR,
              urgency: Urgency = Urgency.NORMAL, attempt: int = 0) -> Story:
        assessment = Assessment(category=category, urgency=urgency, confidence=0.9)
        cause = CaseClassified(event_id=f"{self.case.id}.c{attempt}", case_id=self.case.id,
                               source_channel=Channel(self.case.channel),
                               payload=CaseClassifiedPayload(assessment=assessment, routing_attempt=attempt))
        if attempt == 0:
            self._saved(self.case.classify(assessment, when, cause.event_id))
        self._saved(self.case.route(RoutingDecision(unit=unit, urgency=urgency), cause, when, CAL))
        return self

    def act(self, action: Action, when: datetime, **fields: Any) -> Story:
        self.actions += 1
        unit = fields.pop("unit", self.case.unit)
        event = DeskAction(event_id=f"{self.case.id}.a{self.actions}", case_id=self.case.id,
                           source_channel=Channel(self.case.channel),
                           payload=DeskActionPayload(unit=unit, action=action, actor="王警官", **fields))
        self._saved(self.case.act(event, when, CAL))
        return self

    def merge(self, when: datetime) -> Story:
        event = ChannelEvent(event_id=f"again-{len(self.timeline)}", channel=Channel.HOTLINE_12345,
                             occurred_at=when, text="又来了")
        self._saved(self.case.merge_repeat(event, when, None))
        return self

    def fire(self, rule: str, kind: TimerKind, when: datetime) -> Story:
        due = self.case.deadlines[rule.replace(".", "_")].due
        fired = self.case.fire(TimerSpec(case_id=self.case.id, rule=rule, due=due, kind=kind, due_at=when), when)
        assert fired is not None
        self._saved(fired)
        return self


def november() -> list[Story]:
    A, R, V = Action.ACCEPT, Action.RESOLVE, Action.RETURN_VISIT
    sat, basic, no = Satisfaction.SATISFIED, Satisfaction.BASICALLY_SATISFIED, Satisfaction.DISSATISFIED
    a = (Story("GT-A", Channel.HOTLINE_12345, at(2, 9)).route(Unit.MEDIATION, at(2))
         .act(A, at(2, 15)).act(Action.RECORD_AGREEMENT, at(4), note="赔偿", amount=Decimal("5000"))
         .act(R, at(5), note="已调解").act(V, at(6), satisfaction=sat, solved=True))
    b = (Story("GT-B", Channel.LEGAL_12348, at(2, 9)).route(Unit.MEDIATION, at(2), Category.CONTRACT_DEBT)
         .act(A, at(5)).act(R, at(6), note="已答复").act(V, at(9), satisfaction=no, solved=False)
         .act(A, at(9, 11)).act(R, at(10), note="再次答复").act(V, at(12), satisfaction=basic, solved=True))
    c = (Story("GT-C", Channel.POLICE_110, at(3, 9)).route(Unit.POLICE, at(3), Category.PUBLIC_SECURITY,
                                                          Urgency.CRITICAL)
         .act(A, at(3, 13)).act(Action.HAND_BACK, at(3, 14), reason="非本单位职责")
         .route(Unit.COMMAND, at(3, 15), Category.PUBLIC_SECURITY, Urgency.CRITICAL, attempt=1)
         .act(A, at(3, 16)).act(R, at(4), note="已处置"))
    d = (Story("GT-D", Channel.HOTLINE_12345, at(4, 9)).merge(at(4, 9))
         .route(Unit.VISITOR, at(4), Category.ADMIN_COMPLAINT).merge(at(5)).merge(at(6))
         .act(Action.ESCALATE, at(9), note="久拖不办").act(A, at(9, 11)))
    e = (Story("GT-E", Channel.HOTLINE_12345, at(10, 9)).route(Unit.MEDIATION, at(10))
         .act(A, at(11, 9)))  # accepted the next working day: in time; its 12345 limit then runs out
    e.fire("hotline.complaint", TimerKind.OVERDUE, at(2, 0, month=12))
    return [a, b, c, d, e]


@pytest.fixture(scope="module")
def stories() -> list[Story]:
    return november()


def tally(stories: list[Story], unit: Unit | None = None) -> Tally:
    return Tally.of(f for s in stories for f in s.saved if unit is None or f.unit is unit)


def test_the_facts_saved_step_by_step_are_the_facts_of_the_whole_timeline(stories: list[Story]) -> None:
    for story in stories:
        rebuilt = {f.id: f for f in reversed(facts_of_case(story.case, story.timeline, CAL))}
        saved = {f.id: f for f in reversed(story.saved)}  # reversed: the first of one id stands
        assert saved == rebuilt, story.case.id


def test_mediation_in_november(stories: list[Story]) -> None:
    counts = tally(stories, Unit.MEDIATION).counts(NOV)
    assert counts[Measure.ROUTED] == 3  # A, B, E
    assert counts[Measure.ACCEPTED] == 3  # B's second 签收 after reopening is not a second answer to its routing
    f = figures_of(counts)
    assert f[Figure.RESPONSE] == Ratio(2, 3)  # A same day, E next working day; B three days later
    assert f[Figure.SATISFACTION] == Ratio(2, 3)  # A satisfied, B basically; B's first visit dissatisfied
    assert f[Figure.RESOLUTION] == Ratio(2, 3)
    assert f[Figure.ON_TIME] == Ratio(3, 3)
    assert f[Figure.VISITED] == Ratio(2, 3)  # two closed by a visit, of three resolutions
    assert f[Figure.REOPENED] == Ratio(1, 3)  # reopened ÷ resolved
    assert f[Figure.MEDIATION_SUCCESS] == Ratio(1, 3)  # A agreed; B concluded twice without
    assert f[Figure.HANDED_BACK] == Ratio(0, 3)
    assert tally(stories, Unit.MEDIATION).amount(NOV) == Decimal("5000")
    assert below_floors(f, DEFAULT_FLOORS) == [Figure.SATISFACTION]  # 67 % < 85 %; on time 100 %


def test_a_critical_case_handed_back_and_taken_by_the_command_centre(stories: list[Story]) -> None:
    police = figures_of(tally(stories, Unit.POLICE).counts(NOV))
    assert police[Figure.RESPONSE] == Ratio(0, 1)  # 3 hours for a critical case: late
    assert police[Figure.HANDED_BACK] == Ratio(1, 1)
    command = tally(stories, Unit.COMMAND).counts(NOV)
    assert command[Measure.ROUTED] == 2  # C routed there, D escalated there
    assert figures_of(command)[Figure.RESPONSE] == Ratio(2, 2)  # C in 1 hour; D 2 hours after the escalation
    assert figures_of(command)[Figure.ON_TIME] == Ratio(1, 1)
    assert figures_of(command)[Figure.VISITED] == Ratio(0, 1)


def test_repeats_escalations_and_the_platform_total(stories: list[Story]) -> None:
    total = tally(stories).counts(NOV)
    assert total[Measure.RECEIVED] == 5 and total[Measure.REPEATS] == 3
    assert figures_of(total)[Figure.REPEATS] == Ratio(3, 8)
    assert tally(stories, None).escalated_in(NOV) == [("GT-D", Unit.VISITOR, date(2026, 11, 9))]
    unrouted = [f for s in stories for f in s.saved if f.kind is FactKind.REPEAT and f.unit is None]
    assert len(unrouted) == 1  # D's first repeat came before it was routed


def test_overdue_counts_where_and_until_when(stories: list[Story]) -> None:
    all_units = tally(stories)
    assert all_units.late_at(date(2026, 11, 30)) == []
    assert all_units.late_at(date(2026, 12, 2)) == [("GT-E", Unit.MEDIATION, date(2026, 12, 2))]
    assert all_units.counts(Period.month("2026-12"))[Measure.OVERDUE] == 1


def test_redelivered_facts_change_nothing(stories: list[Story]) -> None:
    once = tally(stories)
    twice = Tally.of([f for s in stories for f in s.saved] * 2)
    assert twice.by_day == once.by_day and twice.late_since == once.late_since


def test_tallies_add_up(stories: list[Story]) -> None:
    per_unit = [tally(stories, u) for u in Unit]
    total = Tally.combined([*per_unit, Tally.of(f for s in stories for f in s.saved if f.unit is None)])
    assert total.by_day == tally(stories).by_day
    assert total.amount(NOV) == Decimal("5000")


def test_rates_without_a_base_are_undefined_not_zero() -> None:
    empty = figures_of({})
    assert all(r.value is None for r in empty.values())
    assert below_floors(empty, DEFAULT_FLOORS) == []
    assert change(12, 10) == pytest.approx(0.2) and change(5, 0) is None and change(None, 3) is None


def test_periods() -> None:
    assert Period.month("2026-02") == Period(date(2026, 2, 1), date(2026, 2, 28))
    assert Period.month("2026-01").shifted(1) == Period.month("2025-12")
    assert Period.month("2026-11").shifted(12).label == "2025-11"
    assert [p.label for p in trend_periods(date(2026, 11, 15), "month", 3)] == ["2026-09", "2026-10", "2026-11"]
    weeks = trend_periods(date(2026, 11, 18), "week", 2)
    assert weeks[-1] == Period(date(2026, 11, 16), date(2026, 11, 22)) and weeks[0].start == date(2026, 11, 9)
    with pytest.raises(ValueError):
        Period.month("2026-13")
