"""Classification: read what the complainant said and conclude category, urgency and risk, with reasons.

It keeps no state: the assessment is a function of the event, so a redelivery concludes the same, and
routing records it on the case together with the unit it chooses (one write instead of two).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from shared.domain.triage import Assessment
from shared.events import CaseClassified, CaseClassifiedPayload, CaseReceived
from shared.handling import parse_event
from shared.metrics import CASES_CLASSIFIED

Emit = Callable[[CaseClassified], Awaitable[None]]
Assess = Callable[[str, str | None, int], Awaitable[Assessment]]


async def classify(body: bytes, *, emit: Emit, assess: Assess, max_bytes: int) -> CaseClassified:
    received = parse_event(body, CaseReceived, max_bytes=max_bytes)
    p = received.payload
    assessment = await assess(p.text, received.source_channel.value, p.repeat_count)
    event = received.follow_up(CaseClassified, CaseClassifiedPayload(assessment=assessment), "classified")
    await emit(event)
    CASES_CLASSIFIED.labels(assessment.category.value, assessment.urgency.value).inc()
    return event
