"""A case as a GeoReport service request. No personal data in any answer: never the complainant; the
description, the place and the answer given (status_notes) only to the upstream that filed the request.

GeoReport has two statuses. `closed` is a case that has its answer (办结: resolved, in its return visit, or
closed); everything before, and a reopened case, is `open`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from services.open311 import catalog
from shared.domain.lifecycle import CaseStatus
from shared.domain.triage import Unit
from shared.labels import UNITS

CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")
ANSWERED = frozenset({CaseStatus.RESOLVED, CaseStatus.RETURN_VISIT, CaseStatus.CLOSED})


def w3c(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # the store gives UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(CHINA).isoformat(timespec="seconds")


def status_of(case: Mapping[str, Any]) -> str:
    try:
        return "closed" if CaseStatus(str(case.get("status"))) in ANSWERED else "open"
    except ValueError:
        return "open"


def answer_of(case: Mapping[str, Any]) -> str | None:
    """The note of the latest 办结答复 on the timeline: what the complainant was told."""
    notes = [e.get("detail", {}).get("note") for e in case.get("timeline", []) if e.get("kind") == "resolve"]
    return next((n for n in reversed(notes) if n), None)


def expected_of(case: Mapping[str, Any]) -> str | None:
    """The nearest legal due date still open, as the end of that day in China (the period ends at 24:00)."""
    dues = []
    for deadline in (case.get("deadlines") or {}).values():
        if deadline.get("met_at") is None and deadline.get("due"):
            try:
                dues.append(date.fromisoformat(deadline["due"]))
            except (TypeError, ValueError):
                continue
    if not dues:
        return None
    return datetime.combine(min(dues), time(23, 59, 59), CHINA).isoformat(timespec="seconds")


def _updated(case: Mapping[str, Any]) -> datetime | None:
    times = [t for t in (case.get("updated_at"), case.get("received_at")) if isinstance(t, datetime)]
    times += [e["at"] for e in case.get("timeline", []) if isinstance(e.get("at"), datetime)]
    return max(times, key=lambda t: t if t.tzinfo else t.replace(tzinfo=UTC)) if times else None


def request_of(case: Mapping[str, Any], record: Mapping[str, Any], *, owner: bool) -> dict[str, Any]:
    code = str(record.get("service_code") or case.get("category") or "other")
    unit = case.get("unit")
    status = status_of(case)
    view: dict[str, Any] = {
        "service_request_id": str(case["_id"]),
        "status": status,
        "status_notes": answer_of(case) if owner and status == "closed" else None,
        "service_name": catalog.name_of(code),
        "service_code": code,
        "description": case.get("text") if owner else None,
        "agency_responsible": UNITS.get(Unit(unit)) if unit in {u.value for u in Unit} else None,
        "service_notice": None,
        "requested_datetime": w3c(case.get("received_at")),
        "updated_datetime": w3c(_updated(case)),
        "expected_datetime": expected_of(case) if status == "open" else None,
        "address": (record.get("address") or case.get("location")) if owner else None,
        "address_id": None,
        "zipcode": None,
        "lat": record.get("lat") if owner else None,
        "long": record.get("long") if owner else None,
        "media_url": None,
    }
    return view
