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
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.config import Settings
from shared.domain.case import Case, receipt_of
from shared.domain.case_events import received_event
from shared.domain.change import Matter
from shared.domain.matters import TopicsOf, split_matters
from shared.domain.repeats import CaseFingerprint, RepeatMatch, complainant_key, find_repeat, repeat_keys, signature_of
from shared.events import ChannelEvent, Envelope, case_id_for, derive_event_id
from shared.handling import Rejected, parse_event
from shared.metrics import CASES_RECEIVED, REPEATS_MERGED
from shared.ports import Storage

Emit = Callable[[Envelope], Awaitable[None]]
CANDIDATES = 20  # the most recent cases under a key that are compared with a new report


@dataclass(frozen=True)
class Intake:
    """What intake's handlers need from the outside world."""

    storage: Storage
    emit: Emit
    settings: Settings
    topics: TopicsOf | None = None  # what each part of a complaint is about, so one matter stays whole


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


async def take_in(body: bytes, deps: Intake, now: datetime) -> str:
    """Validate, split into matters, open (or join) a case for each, link them; returns the first case."""
    event = read_channel_event(body, deps.settings)
    # the classifier behind `topics` is loaded and run off the event loop: the consumer keeps its heartbeat
    matters = await asyncio.to_thread(split_matters, normalise_text(event.text), deps.topics)
    if len(matters) == 1:
        return await take_in_matter(event, matters[0], deps, now)
    case_ids: list[str] = []
    for index, text in enumerate(matters):
        part = event if index == 0 else event.model_copy(
            update={"event_id": derive_event_id(event.event_id, f"matter{index + 1}")})
        case_ids.append(await take_in_matter(part, text, deps, now, Matter(index=index + 1, of=len(matters)),
                                             siblings=frozenset(case_ids)))
    await link_matters(deps.storage, receipt_of(event), case_ids, now)
    return case_ids[0]


async def link_matters(storage: Storage, receipt: str, case_ids: list[str], now: datetime) -> None:
    """Each case of a split complaint names the others, on the case and on its timeline (once)."""
    distinct = list(dict.fromkeys(case_ids))  # two matters may have joined one open case
    for case_id in distinct:
        case = await storage.cases.get(case_id)
        if case is not None:
            await storage.cases.save(case, case.link(receipt, [c for c in distinct if c != case_id], now))


async def take_in_matter(event: ChannelEvent, text: str, deps: Intake, now: datetime, matter: Matter | None = None,
                         siblings: frozenset[str] = frozenset()) -> str:
    """Open the case of one matter, or join the open case it repeats; announce a new one."""
    storage, key = deps.storage, key_of(event, deps.settings)
    own = case_id_for(event.channel, event.event_id)
    filed = await storage.repeats.cases_under(repeat_keys(key, text))
    target, match = await _repeated_case(event, text, key, own, filed, siblings, deps, now)
    if target != own:
        await join_case(storage, target, event, now, match)
        CASES_RECEIVED.labels(event.channel.value, "merged" if match else "redelivered").inc()
        return target

    case, change = Case.receive(event, case_id=own, text=text, complainant_key=key, now=now, matter=matter)
    first_time = await storage.cases.add(case, change)
    await storage.repeats.file_under(filed, own)
    if not first_time:  # a redelivery: announce the case as it was first received
        change.events = [received_event(await storage.cases.get(own) or case, event)]
    for announced in change.events:
        await deps.emit(announced)
    CASES_RECEIVED.labels(event.channel.value, "accepted" if first_time else "redelivered").inc()
    return own


async def _repeated_case(event: ChannelEvent, text: str, key: str | None, own: str, filed: dict[str, list[str]],
                         siblings: frozenset[str], deps: Intake, now: datetime) -> tuple[str, RepeatMatch | None]:
    """The case this report goes to: its own, or an open one it repeats. Most reports have no case filed
    under their keys, and cost no search. A redelivery keeps the answer it was first given."""
    if not any(filed.values()) or any(own in cases for cases in filed.values()):
        return own, None
    known = await deps.storage.receipts.case_of(receipt_of(event))
    if known is not None:
        return known, None
    others = list(dict.fromkeys(c for cases in filed.values() for c in cases[-CANDIDATES:] if c not in siblings))
    candidates = await deps.storage.cases.fingerprints([own, *others])
    if any(c.case_id == own for c in candidates):  # opened before a crash kept it from being filed
        return own, None
    match = find_repeat(CaseFingerprint(own, key, signature_of(text), now), candidates,
                        timedelta(days=deps.settings.repeat_window_days))
    if match is None:
        return own, None
    return await deps.storage.receipts.claim(receipt_of(event), match.case_id, now), match


async def join_case(storage: Storage, case_id: str, event: ChannelEvent, now: datetime,
                    match: RepeatMatch | None) -> None:
    """Count the repeat on the open case, once per report."""
    case = await storage.cases.get(case_id)
    if case is None:  # filed under a key but gone from the store: nothing to join, so it cannot be lost
        raise Rejected("repeat_target_missing", f"case {case_id} is not in the store")
    change = case.merge_repeat(event, now, match)
    await storage.cases.save(case, change)
    if change.changed:
        REPEATS_MERGED.inc()
