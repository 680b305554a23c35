"""Intake: turn a raw channel event into a case, once, and announce it.

A report of a matter that is already open (the same complainant, by a keyed hash of the phone number,
with a similar text; or the very same words from anyone, as when one letter comes through two channels)
joins that case instead of opening a new one: its repeat count and urgency rise and the timeline shows
the merge.

A complaint holding several matters (一单多诉) becomes one case per matter (拆单), each classified and
routed on its own and linked to the others: a debt dispute and "另外，电梯里困着人" must not share a
queue. The first matter keeps the event's own case id; the others' ids derive from the event and the
matter's place, so a redelivered event splits into the same cases (as long as the classifier that
tells the matters apart is the same).
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import lru_cache

from shared.config import Settings
from shared.domain.case import OPEN_STATUSES, CaseStatus
from shared.domain.matters import TopicsOf, split_matters
from shared.domain.repeats import (
    CaseFingerprint,
    RepeatMatch,
    complainant_key,
    find_repeat,
    repeat_keys,
    text_signature,
)
from shared.domain.triage import RiskFlag, Urgency
from shared.events import CaseReceived, CaseReceivedPayload, ChannelEvent, case_id_for, derive_event_id
from shared.handling import Rejected, parse_event
from shared.metrics import CASES_RECEIVED, REPEATS_MERGED
from shared.store import CaseStore, timeline_entry

Emit = Callable[[CaseReceived], Awaitable[None]]
CANDIDATES = 20  # the most recent cases under a key that are compared with a new report


def normalise_text(text: str) -> str:
    """NFC, so the same characters typed on different keyboards compare equal."""
    return unicodedata.normalize("NFC", text).strip()


def read_channel_event(body: bytes, settings: Settings) -> ChannelEvent:
    event = parse_event(body, ChannelEvent, max_bytes=settings.max_event_bytes)
    if len(event.text) > settings.max_text_chars:
        raise Rejected("text_too_long", f"{len(event.text)} characters, the limit is {settings.max_text_chars}")
    return event


def key_of(event: ChannelEvent, settings: Settings) -> str | None:
    """The keyed hash of the complainant's phone number, if the event gives one."""
    phone = event.complainant.phone if event.complainant else None
    return complainant_key(phone, settings.complainant_key_secret.get_secret_value().encode()) if phone else None


def order_keys(body: bytes, settings: Settings) -> list[str]:
    """Reports that may repeat one another (one complainant, or the same words) are taken in turn, never
    side by side: each must see the case the one before it opened. What does not parse has no keys."""
    try:
        event = read_channel_event(body, settings)
    except Rejected:
        return []
    return repeat_keys(key_of(event, settings), normalise_text(event.text))


@lru_cache(maxsize=4096)
def signature_of(text: str) -> tuple[int, ...]:
    """A case's text never changes: a flood of reports compared with the same open cases hashes each once."""
    return tuple(text_signature(text))


async def find_open_repeat(
    store: CaseStore, report: str, key: str | None, text: str, now: datetime, filed: dict[str, list[str]],
    window: timedelta,
) -> RepeatMatch | None:
    """Compare a new report with the open cases filed under the same keys. Signatures are computed from
    the texts here, only when there is something to compare: most reports have no candidates, and a case
    document without a signature is smaller to read and write at every later step."""
    ids = list(dict.fromkeys(c for cases in filed.values() for c in cases[-CANDIDATES:]))
    candidates = []
    for case_id in ids:
        doc = await store.cases.find_one({"_id": case_id}, {"status": 1, "text": 1, "complainant_key": 1,
                                                             "received_at": 1})
        if doc and CaseStatus(doc["status"]) in OPEN_STATUSES:
            candidates.append(CaseFingerprint(case_id, doc.get("complainant_key"), signature_of(doc.get("text", "")),
                                              doc["received_at"]))
    if not candidates:
        return None
    return find_repeat(CaseFingerprint(report, key, signature_of(text), now), candidates, window)


async def take_in(
    body: bytes, *, store: CaseStore, emit: Emit, settings: Settings, now: datetime, topics: TopicsOf | None = None
) -> str:
    """Validate, split into matters, open (or join) a case for each, link them; returns the first case.
    `topics` tells what each candidate part is about, so that one matter told in two breaths stays whole."""
    event = read_channel_event(body, settings)
    # the classifier behind `topics` is loaded and run off the event loop: the consumer keeps its heartbeat
    matters = await asyncio.to_thread(split_matters, normalise_text(event.text), topics)
    if len(matters) == 1:
        return await take_in_matter(event, matters[0], store=store, emit=emit, settings=settings, now=now)
    case_ids: list[str] = []
    for index, text in enumerate(matters):
        part = event if index == 0 else event.model_copy(
            update={"event_id": derive_event_id(event.event_id, f"matter{index + 1}")})
        case_ids.append(await take_in_matter(part, text, store=store, emit=emit, settings=settings, now=now,
                                             matter=(index + 1, len(matters)), siblings=frozenset(case_ids)))
    await link_matters(store, f"{event.channel.value}:{event.event_id}", case_ids, now)
    return case_ids[0]


async def link_matters(store: CaseStore, receipt: str, case_ids: list[str], now: datetime) -> None:
    """Each case of a split complaint names the others, on the case and on its timeline (once)."""
    distinct = list(dict.fromkeys(case_ids))  # two matters may have joined one open case
    for case_id in distinct:
        others = [c for c in distinct if c != case_id]
        if others:
            entry = timeline_entry(f"linked:{receipt}", now, "linked", cases=others)
            await store.update_recording(case_id, entry, {"$addToSet": {"linked_cases": {"$each": others}}})


async def take_in_matter(
    event: ChannelEvent, text: str, *, store: CaseStore, emit: Emit, settings: Settings, now: datetime,
    matter: tuple[int, int] | None = None, siblings: frozenset[str] = frozenset(),
) -> str:
    """Open (or join) the case of one matter, record it on the timeline, publish case-received for a new one."""
    receipt = f"{event.channel.value}:{event.event_id}"
    key = key_of(event, settings)
    own_case_id = case_id_for(event.channel, event.event_id)
    filed = await store.cases_under(repeat_keys(key, text))

    # A redelivered event keeps the case it was first given; with no case filed under its keys there is no
    # search to save, and the claim below returns that case anyway.
    known = await store.receipts.find_one({"_id": receipt}) if any(filed.values()) else None
    if known is None:
        others = {k: [c for c in cases if c not in siblings] for k, cases in filed.items()}  # not its own complaint
        match = await find_open_repeat(store, own_case_id, key, text, now, others,
                                       timedelta(days=settings.repeat_window_days))
        target = match.case_id if match else own_case_id
    else:
        match, target = None, str(known["case_id"])
    case_id, first_time = await store.claim_receipt(receipt, target, own_case_id, now)

    if case_id != own_case_id:
        async with store.exclusive(case_id):  # reports under other keys may be joining it side by side
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
        "occurred_at": event.occurred_at,
        "received_at": now,
        "repeat_count": 0,
        **({"matter": {"index": matter[0], "of": matter[1]}, "linked_cases": []} if matter else {}),
    }, timeline_entry(f"received:{receipt}", now, "received", channel=event.channel.value))
    await store.file_under(filed, case_id)
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
    if case is None:  # filed under a key but gone from the store: nothing to join, so it cannot be lost
        raise Rejected("repeat_target_missing", f"case {case_id} is not in the store")
    update: dict[str, object] = {"$inc": {"repeat_count": 1}, "$addToSet": {"risk_flags": RiskFlag.REPEATED.value}}
    if case.get("urgency"):
        update["$set"] = {"urgency": Urgency(case["urgency"]).raised().value}
    entry = timeline_entry(f"merged:{receipt}", now, "merged", channel=event.channel.value,
                           repeat_count=int(case.get("repeat_count", 0)) + 1,
                           similarity=round(match.similarity, 2) if match else None,
                           match=match.reason.value if match else None)
    if await store.update_recording(case_id, entry, update):
        REPEATS_MERGED.inc()
