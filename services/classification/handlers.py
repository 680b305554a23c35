"""Classification: read what the complainant said and conclude category, urgency and risk, with reasons.

It keeps no state: the assessment is a function of the event, so a redelivery concludes the same, and
routing records it on the case together with the unit it chooses (one write instead of two).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from shared.domain.classification import Classifier
from shared.events import CaseClassified, CaseClassifiedPayload, CaseReceived
from shared.handling import parse_event
from shared.metrics import CASES_CLASSIFIED

Emit = Callable[[CaseClassified], Awaitable[None]]


async def classify(body: bytes, *, emit: Emit, classifier: Classifier, max_bytes: int) -> CaseClassified:
    received = parse_event(body, CaseReceived, max_bytes=max_bytes)
    p = received.payload
    assessment = classifier.assess(p.text, received.source_channel.value, repeat_count=p.repeat_count)
    event = received.follow_up(CaseClassified, CaseClassifiedPayload(assessment=assessment), "classified")
    await emit(event)
    CASES_CLASSIFIED.labels(assessment.category.value, assessment.urgency.value).inc()
    return event
