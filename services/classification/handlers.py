"""Classification: read what the complainant said and conclude category, urgency and risk, with reasons."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from shared.domain.case import CaseStatus
from shared.domain.classification import Classifier
from shared.events import CaseClassified, CaseClassifiedPayload, CaseReceived
from shared.handling import parse_event
from shared.metrics import CASES_CLASSIFIED
from shared.store import CaseStore, timeline_entry

Emit = Callable[[CaseClassified], Awaitable[None]]


async def classify(
    body: bytes, *, store: CaseStore, emit: Emit, classifier: Classifier, max_bytes: int, now: datetime
) -> CaseClassified:
    received = parse_event(body, CaseReceived, max_bytes=max_bytes)
    p = received.payload
    case_id = received.case_id
    # Repeat reports may have joined the case since it was received: they count towards its urgency.
    case = await store.get_case(case_id)
    repeats = max(p.repeat_count, int((case or {}).get("repeat_count", 0)))
    assessment = await store.record_assessment(
        case_id, classifier.assess(p.text, received.source_channel.value, repeat_count=repeats)
    )
    entry = timeline_entry(f"classified:{received.event_id}", now, "classified", category=assessment.category.value,
                           urgency=assessment.urgency.value, confidence=round(assessment.confidence, 3))
    changed = await store.advance(case_id, {CaseStatus.RECEIVED}, CaseStatus.CLASSIFIED, {
        "category": assessment.category.value,
        "confidence": round(assessment.confidence, 3),
        "urgency": assessment.urgency.value,
        "risk_flags": [f.value for f in assessment.risk_flags],
        "needs_review": assessment.needs_review,
        "classified_at": now,
    }, op_id=received.event_id, entry=entry, case=case)
    event = received.follow_up(CaseClassified, CaseClassifiedPayload(assessment=assessment), "classified")
    await emit(event)
    if changed:
        CASES_CLASSIFIED.labels(assessment.category.value, assessment.urgency.value).inc()
    return event
