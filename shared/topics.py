"""The topic catalogue: every Kafka topic the system reads or writes, named once."""

from __future__ import annotations

from shared.domain.triage import Unit

CHANNEL_EVENTS = "triage.channel-events.v1"
"""Raw complaints published by upstream channels (12345, 110, 12348, letters, walk-in, online, grid)."""

CASE_RECEIVED = "triage.case-received.v1"
CASE_CLASSIFIED = "triage.case-classified.v1"
CASE_ROUTED = "triage.case-routed.v1"
DESK_ACTIONS = "triage.desk-actions.v1"
CASE_ALERTS = "triage.case-alerts.v1"
"""Reminders, overdue notices and escalations raised by the follow-up service's timers."""

CASE_UPDATES = "triage.case-updates.v1"
"""The status feed for the upstream systems: every milestone of a case, once (services/feed), keyed by the channel."""

DEAD_LETTER = "triage.dead-letter.v1"
"""Events that could not be processed, with the reason in the headers."""


def desk_topic(unit: Unit | str) -> str:
    """The queue a unit's desk consumes."""
    return f"triage.desk.{Unit(unit).value}.v1"


DESK_TOPICS = tuple(desk_topic(u) for u in Unit)
ALL_TOPICS = (CHANNEL_EVENTS, CASE_RECEIVED, CASE_CLASSIFIED, CASE_ROUTED, DESK_ACTIONS, CASE_ALERTS,
              CASE_UPDATES, DEAD_LETTER, *DESK_TOPICS)
