"""Intake: turn a raw channel event into a case, once, and announce it."""

from __future__ import annotations

import unicodedata
from collections.abc import Awaitable, Callable
from datetime import datetime

from shared.config import Settings
from shared.domain.case import CaseStatus
from shared.domain.repeats import complainant_key
from shared.events import CaseReceived, CaseReceivedPayload, ChannelEvent, case_id_for, derive_event_id
from shared.handling import Rejected, parse_event
from shared.metrics import CASES_RECEIVED
from shared.store import CaseStore

Emit = Callable[[CaseReceived], Awaitable[None]]


def normalise_text(text: str) -> str:
    """NFC, so the same characters typed on different keyboards compare equal."""
    return unicodedata.normalize("NFC", text).strip()


def read_channel_event(body: bytes, settings: Settings) -> ChannelEvent:
    event = parse_event(body, ChannelEvent, max_bytes=settings.max_event_bytes)
    if len(event.text) > settings.max_text_chars:
        raise Rejected("text_too_long", f"{len(event.text)} characters, the limit is {settings.max_text_chars}")
    return event


async def take_in(body: bytes, *, store: CaseStore, emit: Emit, settings: Settings, now: datetime) -> str:
    """Validate, open (or find) the case, record it on the timeline, publish case-received."""
    event = read_channel_event(body, settings)
    text = normalise_text(event.text)
    receipt = f"{event.channel.value}:{event.event_id}"
    phone = event.complainant.phone if event.complainant else None
    key = complainant_key(phone, settings.complainant_key_secret.get_secret_value().encode()) if phone else None

    case_id, first_time = await store.claim_receipt(receipt, case_id_for(event.channel, event.event_id), now)
    await store.open_case({
        "_id": case_id,
        "status": CaseStatus.RECEIVED.value,
        "channel": event.channel.value,
        "text": text,
        "location": event.location,
        "external_ref": event.external_ref,
        "complainant": event.complainant.model_dump(exclude_none=True) if event.complainant else None,
        "complainant_key": key,
        "occurred_at": event.occurred_at,
        "received_at": now,
        "repeat_count": 0,
    })
    await store.record(case_id, f"received:{receipt}", now, "received", channel=event.channel.value)
    await emit(CaseReceived(
        event_id=derive_event_id(receipt, "received"),
        case_id=case_id,
        source_channel=event.channel,
        traceparent=event.traceparent,
        payload=CaseReceivedPayload(
            text=text, location=event.location, received_at=now, complainant_key=key,
        ),
    ))
    CASES_RECEIVED.labels(event.channel.value, "accepted" if first_time else "redelivered").inc()
    return case_id
