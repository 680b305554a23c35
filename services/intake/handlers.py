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
from functools import lru_cache

from shared.cloudevents import Headers, channel_event_fields, relevant_headers
from shared.config import Settings
from shared.domain.case import Case
from shared.domain.case_events import received_event
from shared.domain.change import Matter
from shared.domain.matters import TopicsOf, may_hold_several, split_matters
from shared.domain.repeats import CaseFingerprint, RepeatMatch, complainant_key, find_repeat, repeat_keys, signature_of
from shared.events import ChannelEvent, Envelope, case_id_for, derive_event_id, receipt_of
from shared.handling import Rejected, parse_event, validate_event
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


def read_channel_event(body: bytes, settings: Settings, headers: Headers = ()) -> ChannelEvent:
    """The channel event a record carries: plain JSON, or a CloudEvent in binary or structured mode (its
    headers tell which: see shared/cloudevents.py)."""
    return _read(body, relevant_headers(headers), settings.max_event_bytes, settings.max_text_chars)


@lru_cache(maxsize=1024)
def _read(body: bytes, headers: tuple[tuple[str, bytes], ...], max_bytes: int, max_text_chars: int) -> ChannelEvent:
    """Kept for a while: a batch's events are read once to order them and again to take them in."""
    fields = channel_event_fields(body, headers, max_bytes=max_bytes)
    event = (parse_event(body, ChannelEvent, max_bytes=max_bytes) if fields is None
             else validate_event(fields, ChannelEvent))
    if len(event.text) > max_text_chars:
        raise Rejected("text_too_long", f"{len(event.text)} characters, the limit is {max_text_chars}")
    return event


def key_of(event: ChannelEvent, settings: Settings) -> str | None:
    """The keyed hash of the complainant's phone number, if the event gives one."""
    phone = event.complainant.phone if event.complainant else None
    return complainant_key(phone, settings.complainant_key_secret.get_secret_value().encode()) if phone else None


def order_keys(body: bytes, settings: Settings, headers: Headers = ()) -> list[str]:
    """Reports that may repeat one another (one complainant, or the same words) are taken in turn, never
    side by side: each must see the case the one before it opened. What does not parse has no keys."""
    try:
        event = read_channel_event(body, settings, headers)
    except Rejected:
        return []
    return repeat_keys(key_of(event, settings), normalise_text(event.text))


async def take_in(body: bytes, deps: Intake, now: datetime, headers: Headers = ()) -> str:
    """Validate, split into matters, open (or join) a case for each, linked to the others; returns the first.

    Where each matter goes is decided for all of them first, so every case is written once, already naming
    the others (a link written afterwards would race the routing of a case just announced)."""
    event = read_channel_event(body, deps.settings, headers)
    text = normalise_text(event.text)
    # the classifier behind `topics` is loaded and run off the event loop: the consumer keeps its heartbeat
    matters = await asyncio.to_thread(split_matters, text, deps.topics) if may_hold_several(text) else [text]
    if len(matters) == 1:
        return await deliver(await destination(event, matters[0], deps, now), deps, now)
    parts = [event if index == 0 else event.model_copy(
        update={"event_id": derive_event_id(event.event_id, f"matter{index + 1}")}) for index in range(len(matters))]
    own = frozenset(case_id_for(part.channel, part.event_id) for part in parts)
    found = [await destination(part, said, deps, now, siblings=own) for part, said in zip(parts, matters, strict=True)]
    targets = list(dict.fromkeys(d.target for d in found))  # two matters may join one open case
    for index, d in enumerate(found):
        await deliver(d, deps, now, Matter(index=index + 1, of=len(matters)),
                      linked=(receipt_of(event), [t for t in targets if t != d.target]))
    return found[0].target


@dataclass(frozen=True)
class Destination:
    """Where one matter goes: its own new case, or the open case it repeats."""

    event: ChannelEvent
    text: str
    key: str | None
    own: str
    keys: list[str]  # the repeat keys the matter was filed under
    target: str
    match: RepeatMatch | None

    @property
    def is_new(self) -> bool:
        return self.target == self.own


async def destination(event: ChannelEvent, text: str, deps: Intake, now: datetime,
                      siblings: frozenset[str] = frozenset()) -> Destination:
    key = key_of(event, deps.settings)
    own = case_id_for(event.channel, event.event_id)
    keys = repeat_keys(key, text)
    # Filed at once, before it is known whether the report repeats an open case: one trip per key for the
    # look-up and the filing both. A report that joins another case takes its filing back.
    filed = await deps.storage.repeats.file_under(keys, own)
    target, match = await _repeated_case(event, text, key, own, filed, siblings - {own}, deps, now)
    return Destination(event, text, key, own, keys, target, match)


async def deliver(d: Destination, deps: Intake, now: datetime, matter: Matter | None = None,
                  linked: tuple[str, list[str]] | None = None) -> str:
    """Open the new case and announce it, or count the repeat on the open one; `linked` names the complaint
    and the other cases it was split into."""
    storage, channel = deps.storage, d.event.channel.value
    if not d.is_new:
        await join_case(storage, d, now, linked)
        await storage.repeats.unfile(d.keys, d.own)
        CASES_RECEIVED.labels(channel, "merged" if d.match else "redelivered").inc()
        return d.target
    case, change = Case.receive(d.event, case_id=d.own, text=d.text, complainant_key=d.key, now=now, matter=matter)
    if linked:
        change += case.link(*linked, now)
    first_time = await storage.cases.add(case, change)
    if not first_time:  # a redelivery: announce the case as it was first received
        change.events = [received_event(await storage.cases.get(d.own) or case, d.event)]
    for announced in change.events:
        await deps.emit(announced)
    CASES_RECEIVED.labels(channel, "accepted" if first_time else "redelivered").inc()
    return d.own


async def _repeated_case(event: ChannelEvent, text: str, key: str | None, own: str, filed: dict[str, list[str]],
                         siblings: frozenset[str], deps: Intake, now: datetime) -> tuple[str, RepeatMatch | None]:
    """The case this report goes to: its own, or an open one it repeats. Most reports have no case filed
    under their keys before them, and cost no search. A redelivery keeps the answer it was first given: the
    case it joined (its receipt says which), or its own (already filed under its keys). A report whose
    intake stopped between filing and claiming the repeat it matched comes back as a case of its own:
    not merged, never lost."""
    if not any(filed.values()):
        return own, None
    known = await deps.storage.receipts.case_of(receipt_of(event))
    if known is not None:
        return known, None
    if any(own in cases for cases in filed.values()):
        return own, None
    others = list(dict.fromkeys(c for cases in filed.values() for c in cases[-CANDIDATES:] if c not in siblings))
    candidates = await deps.storage.cases.fingerprints([own, *others])
    if any(c.case_id == own for c in candidates):  # its own case, though a flood pushed it off its keys
        return own, None
    match = find_repeat(CaseFingerprint(own, key, signature_of(text), now), candidates,
                        timedelta(days=deps.settings.repeat_window_days))
    if match is None:
        return own, None
    return await deps.storage.receipts.claim(receipt_of(event), match.case_id, now), match


async def join_case(storage: Storage, d: Destination, now: datetime, linked: tuple[str, list[str]] | None) -> None:
    """Count the repeat on the open case, once per report (and name the cases split from the same complaint)."""
    case = await storage.cases.get(d.target)
    if case is None:  # filed under a key but gone from the store: nothing to join, so it cannot be lost
        raise Rejected("repeat_target_missing", f"case {d.target} is not in the store")
    change = case.merge_repeat(d.event, now, d.match)
    if linked:
        change += case.link(*linked, now)
    await storage.cases.save(case, change)
    if change.changed:
        REPEATS_MERGED.inc()
