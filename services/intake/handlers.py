"""Intake: turn a raw channel event into a case, once, and announce it.

A report of a matter that is already open (the same complainant about the same thing, or a near-copy of
the text from anyone) joins that case instead of opening a new one: its repeat count and urgency rise and
the timeline shows the merge.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from shared.config import Settings
from shared.domain.case import OPEN_STATUSES, CaseStatus
from shared.domain.repeats import (
    CaseFingerprint,
    RepeatMatch,
    complainant_key,
    find_repeat,
    lsh_bands,
    minhash_signature,
)
from shared.domain.triage import RiskFlag, Urgency
from shared.events import CaseReceived, CaseReceivedPayload, ChannelEvent, case_id_for, derive_event_id
from shared.handling import Rejected, parse_event
from shared.metrics import CASES_RECEIVED, REPEATS_MERGED
from shared.store import CaseStore

Emit = Callable[[CaseReceived], Awaitable[None]]
CANDIDATE_LIMIT = 50


def normalise_text(text: str) -> str:
    """NFC, so the same characters typed on different keyboards compare equal."""
    return unicodedata.normalize("NFC", text).strip()


def read_channel_event(body: bytes, settings: Settings) -> ChannelEvent:
    event = parse_event(body, ChannelEvent, max_bytes=settings.max_event_bytes)
    if len(event.text) > settings.max_text_chars:
        raise Rejected("text_too_long", f"{len(event.text)} characters, the limit is {settings.max_text_chars}")
    return event


async def find_open_repeat(
    store: CaseStore, fingerprint: CaseFingerprint, bands: list[str], window: timedelta
) -> RepeatMatch | None:
    """Look up the few open cases that could be the same matter, then compare them properly."""
    alike: list[dict[str, object]] = [{"lsh": {"$in": bands}}]
    if fingerprint.complainant_key:
        alike.append({"complainant_key": fingerprint.complainant_key})
    docs = await store.cases.find(
        {"status": {"$in": [s.value for s in OPEN_STATUSES]},
         "received_at": {"$gte": fingerprint.received_at - window},
         "$or": alike},
        {"signature": 1, "complainant_key": 1, "received_at": 1},
    ).limit(CANDIDATE_LIMIT).to_list(None)
    candidates = [
        CaseFingerprint(str(d["_id"]), d.get("complainant_key"), d["signature"], d["received_at"])
        for d in docs if d.get("signature")
    ]
    return find_repeat(fingerprint, candidates, window)


async def take_in(body: bytes, *, store: CaseStore, emit: Emit, settings: Settings, now: datetime) -> str:
    """Validate, open (or join) the case, record it on the timeline, publish case-received for a new one."""
    event = read_channel_event(body, settings)
    text = normalise_text(event.text)
    receipt = f"{event.channel.value}:{event.event_id}"
    phone = event.complainant.phone if event.complainant else None
    key = complainant_key(phone, settings.complainant_key_secret.get_secret_value().encode()) if phone else None
    own_case_id = case_id_for(event.channel, event.event_id)
    signature = minhash_signature(text)
    bands = lsh_bands(signature)

    known = await store.receipts.find_one({"_id": receipt})
    if known is None:
        match = await find_open_repeat(store, CaseFingerprint(own_case_id, key, signature, now), bands,
                                       timedelta(days=settings.repeat_window_days))
        target = match.case_id if match else own_case_id
    else:
        match, target = None, str(known["case_id"])
    case_id, first_time = await store.claim_receipt(receipt, target, own_case_id, now)

    if case_id != own_case_id:
        await join_case(store, case_id, receipt, event, now, match)
        CASES_RECEIVED.labels(event.channel.value, "merged" if first_time else "redelivered").inc()
        return case_id

    await store.open_case({
        "_id": case_id,
        "status": CaseStatus.RECEIVED.value,
        "channel": event.channel.value,
        "text": text,
        "location": event.location,
        "external_ref": event.external_ref,
        "complainant": event.complainant.model_dump(exclude_none=True) if event.complainant else None,
        "complainant_key": key,
        "signature": signature,
        "lsh": bands,
        "occurred_at": event.occurred_at,
        "received_at": now,
        "repeat_count": 0,
        "merged_receipts": [],
    })
    await store.record(case_id, f"received:{receipt}", now, "received", channel=event.channel.value)
    await emit(CaseReceived(
        event_id=derive_event_id(receipt, "received"),
        case_id=case_id,
        source_channel=event.channel,
        traceparent=event.traceparent,
        payload=CaseReceivedPayload(text=text, location=event.location, received_at=now, complainant_key=key),
    ))
    CASES_RECEIVED.labels(event.channel.value, "accepted" if first_time else "redelivered").inc()
    return case_id


async def join_case(
    store: CaseStore, case_id: str, receipt: str, event: ChannelEvent, now: datetime, match: RepeatMatch | None
) -> None:
    """Count the repeat on the open case, once per report, and raise its urgency a step."""
    case = await store.get_case(case_id)
    if case is None:  # the first report's case is not written yet: its own intake will open it
        raise Rejected("repeat_target_missing", f"case {case_id} is not in the store yet")
    urgency = Urgency(case["urgency"]).raised() if case.get("urgency") else None
    update: dict[str, object] = {
        "$push": {"merged_receipts": receipt},
        "$inc": {"repeat_count": 1},
        "$addToSet": {"risk_flags": RiskFlag.REPEATED.value},
    }
    if urgency is not None:
        update["$set"] = {"urgency": urgency.value}
    result = await store.cases.update_one({"_id": case_id, "merged_receipts": {"$ne": receipt}}, update)
    await store.record(case_id, f"merged:{receipt}", now, "merged", channel=event.channel.value,
                       repeat_count=int(case.get("repeat_count", 0)) + (1 if result.modified_count else 0),
                       similarity=round(match.similarity, 2) if match else None,
                       match=match.reason.value if match else None)
    if result.modified_count:
        REPEATS_MERGED.inc()
