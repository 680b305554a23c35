"""What the upstream systems hear of a case: its milestones, read off its timeline. Pure.

A 12345 ticket cannot be closed without the answer and the caller's evaluation, so the hotline must hear when
its case was accepted, where it went and by when it is due, what the answer was and how the return visit went.
Each milestone is one timeline entry (a return visit is two: the visit, then closed or reopened), and its event
id derives from the entry's, so the same timeline always gives the same milestones with the same ids: the feed
(services/feed) publishes those it has not published yet.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from shared.domain.change import TimelineEntry
from shared.domain.lifecycle import Action, CaseStatus, Satisfaction
from shared.domain.triage import Unit
from shared.events import CaseUpdated, CaseUpdatePayload, Channel, Milestone, derive_event_id

M = Milestone
_ACTIONS = {Action.ACCEPT.value: M.ACCEPTED, Action.HAND_BACK.value: M.HANDED_BACK,
            Action.RESOLVE.value: M.RESOLVED, Action.ESCALATE.value: M.ESCALATED}
_AFTER_VISIT = {CaseStatus.CLOSED.value: M.CLOSED, CaseStatus.REOPENED.value: M.REOPENED}


def milestones_of(case_id: str, channel: Channel, external_ref: str | None,
                  timeline: Sequence[TimelineEntry]) -> list[CaseUpdated]:
    """Every milestone of a case so far, in the order of its timeline."""
    return list(_read(case_id, channel, external_ref, timeline))


def _read(case_id: str, channel: Channel, external_ref: str | None,
          timeline: Sequence[TimelineEntry]) -> Iterator[CaseUpdated]:
    def event(entry: TimelineEntry, milestone: Milestone, step: str = "", *, unit: Unit | None = None,
              due: str | None = None, answer: str | None = None, satisfaction: Satisfaction | None = None,
              solved: bool | None = None) -> CaseUpdated:
        payload = CaseUpdatePayload(milestone=milestone, at=_aware(entry.at), external_ref=external_ref, unit=unit,
                                    due=due, answer=answer, satisfaction=satisfaction, solved=solved)
        return CaseUpdated(event_id=derive_event_id(case_id, f"update.{entry.id}{step}"), case_id=case_id,
                           source_channel=channel, occurred_at=_aware(entry.at), payload=payload)

    unit: Unit | None = None
    for n, entry in enumerate(timeline):
        d, kind = entry.detail, entry.kind
        if kind == "received":
            yield event(entry, M.RECEIVED)
        elif kind == "routed":
            unit = Unit(d["unit"])
            first = int(d.get("attempt", 0)) == 0
            yield event(entry, M.ROUTED if first else M.REROUTED, unit=unit, due=_due_opened(timeline, n))
        elif kind in _ACTIONS or kind == "escalated":  # "escalated": by an overdue limit
            milestone = _ACTIONS.get(kind, M.ESCALATED)
            if milestone is M.ESCALATED:
                unit = Unit.COMMAND
            answer = d.get("note") if milestone is M.RESOLVED else None
            yield event(entry, milestone, unit=unit, answer=answer)
        elif kind == "deadline_extended":
            yield event(entry, M.EXTENDED, unit=unit, due=d.get("due"))
        elif kind == Action.RETURN_VISIT.value:
            solved = d.get("solved")
            yield event(entry, M.RETURN_VISIT, unit=unit, satisfaction=Satisfaction(d["satisfaction"]),
                        solved=solved if isinstance(solved, bool) else None)
            after = _AFTER_VISIT.get(str(d.get("after")))
            if after is not None:
                yield event(entry, after, f".{after.value}", unit=unit)


def _due_opened(timeline: Sequence[TimelineEntry], routed: int) -> str | None:
    """The nearest due date of the limits a routing opened (written right after it, at the same instant)."""
    at, dues = timeline[routed].at, []
    for entry in timeline[routed + 1:]:
        if entry.kind != "deadline_opened" or entry.at != at:
            break
        dues.append(str(entry.detail["due"]))
    return min(dues, default=None)


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)
