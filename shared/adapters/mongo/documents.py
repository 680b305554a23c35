"""Cases as documents: the codec between the `Case` aggregate and what MongoDB keeps.

The complainant is the one part stored differently: each value encrypted (personal.py), with the masked view
beside it. `case_document` and `case_fields` leave it out, so nothing can write it in the clear by mistake;
`personal_fields` is what stores it. A case is never loaded with it: no step after receiving reads it, and only
the desk's reveal decrypts it (from the document, not the aggregate)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from enum import Enum
from typing import Any

from shared.adapters.mongo.ferretdb import objects_as_pairs, pairs_as_objects
from shared.adapters.mongo.personal import Sealer, sealed_complainant
from shared.domain.case import Case
from shared.domain.change import TimelineEntry
from shared.domain.masks import masked

Document = dict[str, Any]

PERSONAL = "complainant"
MASKED = "complainant_masked"
# What a case is loaded with: not the timeline, which only grows and only the desk reads, nor the complainant.
CASE_PROJECTION: Document = {"timeline": 0, PERSONAL: 0, MASKED: 0}
# What a case's queue entry is made of (shared.domain.queue.entry_of), for reads that need no more.
QUEUE_ENTRY_PROJECTION: Document = dict.fromkeys((
    "status", "unit", "urgency", "category", "channel", "overdue", "needs_review", "external_ref", "received_at",
    "deadlines", "text", "version"), 1)


def plain(value: Any) -> Any:
    """Values as BSON takes them: enums as their values, tuples as lists, days as ISO dates."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return value


def _stored(name: str, value: Any) -> Any:
    value = plain(value)
    if name == "assessment" and value is not None:
        value = {**value, "top_categories": pairs_as_objects(value["top_categories"], "category", "probability")}
    return value


def case_fields(case: Case, names: Iterable[str]) -> Document:
    """The named fields as stored; the complainant only once erased (None): its values go through
    `personal_fields`."""
    dumped = case.model_dump(include=set(names))
    return {name: _stored(name, value) for name, value in dumped.items() if not (name == PERSONAL and value)}


async def personal_fields(case: Case, sealer: Sealer | None) -> Document:
    """The complainant as stored: each value encrypted, and the masked view every desk sees first; both None
    once erased. Without a sealer (a process without the master key) personal data is refused, never stored."""
    if not case.complainant:
        return {PERSONAL: None, MASKED: None}
    return {PERSONAL: await sealed_complainant(case.complainant, sealer), MASKED: masked(case.complainant)}


def entry_document(entry: TimelineEntry) -> Document:
    return {"id": entry.id, "at": entry.at, "kind": entry.kind, "detail": plain(entry.detail)}


def case_document(case: Case, entries: Iterable[TimelineEntry]) -> Document:
    """A new case as inserted, with its first timeline entries; a field not known yet is left out, not null
    (FerretDB rewrites the whole document at every update, so every byte is paid for again)."""
    doc = {k: v for k, v in case_fields(case, Case.model_fields.keys() - {"id", "timeline_ids"}).items()
           if v is not None}
    listed = [entry_document(e) for e in entries]
    return {"_id": case.id, **doc, "timeline": listed, "timeline_ids": [e["id"] for e in listed]}


def case_from_document(doc: Mapping[str, Any]) -> Case:
    data = {k: v for k, v in doc.items() if k not in ("_id", "timeline", PERSONAL, MASKED)}
    assessment = data.get("assessment")
    if assessment:
        data["assessment"] = {**assessment, "top_categories": objects_as_pairs(
            assessment.get("top_categories", []), "category", "probability")}
    return Case.model_validate({"id": doc["_id"], **data})


def entry_from_document(doc: Mapping[str, Any]) -> TimelineEntry:
    return TimelineEntry.model_validate(doc)
