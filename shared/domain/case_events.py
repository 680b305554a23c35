"""The events a case's steps publish, with ids derived from their causes so that a replay repeats them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from shared.domain.change import OpenDeadline
from shared.domain.triage import Assessment, Category, RiskFlag, RoutingDecision, Unit, Urgency
from shared.events import (
    AlertKind,
    CaseAlert,
    CaseAlertPayload,
    CaseClassified,
    CaseClassifiedPayload,
    CaseReceived,
    CaseReceivedPayload,
    CaseRouted,
    CaseRoutedPayload,
    Channel,
    ChannelEvent,
    DeskAction,
    OpenedDeadline,
    derive_event_id,
    receipt_of,
)


class CaseFacts(Protocol):
    """What the events say of a case (the `Case` aggregate, which builds them)."""

    id: str
    channel: str
    text: str
    location: str | None
    received_at: datetime
    complainant_key: str | None
    repeat_count: int
    category: Category | None
    risk_flags: list[RiskFlag]
    urgency: Urgency | None
    routing_attempt: int
    assessment: Assessment | None
    excluded_units: list[Unit]
    handback_reason: str | None


def received_event(case: CaseFacts, event: ChannelEvent) -> CaseReceived:
    return CaseReceived(
        event_id=derive_event_id(receipt_of(event), "received"),
        case_id=case.id,
        source_channel=event.channel,
        traceparent=event.traceparent,
        payload=CaseReceivedPayload(text=case.text, location=case.location, received_at=case.received_at,
                                    complainant_key=case.complainant_key, repeat_count=case.repeat_count),
    )


def _payload(case: CaseFacts, unit: Unit, urgency: Urgency, decision: RoutingDecision, attempt: int,
             opened: Iterable[OpenDeadline]) -> CaseRoutedPayload:
    return CaseRoutedPayload(
        unit=unit, category=case.category or Category.OTHER, urgency=urgency, risk_flags=case.risk_flags,
        decision=decision, routing_attempt=attempt, text=case.text, location=case.location,
        received_at=case.received_at,
        deadlines=[OpenedDeadline(rule=d.rule, start=d.start, due=d.due, source=d.source) for d in opened],
    )


def routed_event(case: CaseFacts, cause: CaseClassified, decision: RoutingDecision, attempt: int,
                 opened: Iterable[OpenDeadline]) -> CaseRouted:
    """A case routed to a unit: for its desk's queue and the follow-up, which times the limits opened."""
    payload = _payload(case, decision.unit, decision.urgency, decision, attempt, opened)
    return cause.follow_up(CaseRouted, payload, f"routed{attempt}")


def escalated_event(case: CaseFacts, cause_id: str, why: str) -> CaseRouted:
    """A case put in the command centre's queue outside normal routing, one urgency step higher."""
    urgency = (case.urgency or Urgency.NORMAL).raised()
    decision = RoutingDecision(unit=Unit.COMMAND, urgency=urgency, override=why, reasons=[])
    return CaseRouted(
        event_id=derive_event_id(cause_id, "escalated"), case_id=case.id, source_channel=Channel(case.channel),
        payload=_payload(case, Unit.COMMAND, urgency, decision, case.routing_attempt, []),
    )


def reroute_event(case: CaseFacts, action: DeskAction, attempt: int) -> CaseClassified:
    """A case handed back by a desk, to be routed again without that unit."""
    assert case.assessment is not None
    return action.follow_up(CaseClassified, CaseClassifiedPayload(
        assessment=case.assessment, routing_attempt=attempt, excluded_units=case.excluded_units,
        handback_reason=case.handback_reason,
    ), "reroute")


def alert_event(case: CaseFacts, cause_id: str, step: str, kind: AlertKind, unit: Unit, rule: str, due: str,
                traceparent: str | None = None) -> CaseAlert:
    return CaseAlert(
        event_id=derive_event_id(cause_id, step), case_id=case.id, source_channel=Channel(case.channel),
        traceparent=traceparent, payload=CaseAlertPayload(kind=kind, unit=unit, rule=rule, due=due),
    )
