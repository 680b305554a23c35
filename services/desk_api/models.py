"""What the desk API accepts and what it shows: request validation and response views, no I/O.

Views are allow-lists: a field the store gains later is not shown until it is added here, so personal
data (the complainant, their keyed hash) cannot leak by accident.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError

from services.desk_api.disclosure import disclose
from shared.domain.lifecycle import DESK_ACTIONS, OPEN_STATUSES, Action, CaseStatus
from shared.domain.triage import Unit, Urgency
from shared.events import DeskActionPayload

Document = dict[str, Any]

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
EXCERPT_CHARS = 200

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")  # shared.events.SafeId
TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")

NEEDS_REASON = frozenset({Action.HAND_BACK, Action.REQUEST_EXTENSION})
_DESK_ACTION_VALUES = tuple(sorted(a.value for a in DESK_ACTIONS))
_STATUS_VALUES = tuple(s.value for s in CaseStatus)

# Fields of a case a desk sees in its queue and in the detail; the complainant is added by disclosure.
SUMMARY_FIELDS = (
    "status", "unit", "category", "urgency", "risk_flags", "channel", "location", "received_at", "routed_at",
    "overdue", "repeat_count", "needs_review", "deadlines", "text", "matter", "linked_cases",
)
DETAIL_FIELDS = (
    "status", "unit", "category", "urgency", "risk_flags", "channel", "location", "text", "external_ref",
    "occurred_at", "received_at", "routed_at", "accepted_at", "resolved_at", "closed_at", "updated_at", "routing",
    "routing_attempt", "overdue", "overdue_since", "overdue_rules", "repeat_count", "needs_review",
    "handback_reason", "excluded_units", "extension_used", "agreement", "satisfaction", "reopen_count",
    "escalated_from", "escalated_at", "matter", "linked_cases",
)
DEADLINE_FIELDS = ("rule", "start", "due", "source", "opened_at", "met_at", "extended_by")
ACTION_RECORD_FIELDS = ("case_id", "action", "actor", "outcome", "reason", "at", "before", "after")
# Keys never shown from a timeline entry's detail, however it was written.
_PERSONAL_KEYS = frozenset({"complainant", "complainant_key", "phone", "id_number"})


class Problem(Exception):
    """A request the API refuses with 422; `detail` lists what is wrong, field by field."""

    def __init__(self, error: str, detail: list[dict[str, str]] | str) -> None:
        super().__init__(error)
        self.error = error
        self.detail = detail


def _problem(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}


def _shown(value: str, limit: int = 32) -> str:
    return repr(value[:limit] + ("…" if len(value) > limit else ""))


# --- the queue's query --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueQuery:
    statuses: tuple[CaseStatus, ...]
    overdue: bool | None
    limit: int

    def mongo_filter(self, unit: Unit) -> Document:
        """Only equality, $in and $ne: what FerretDB and MongoDB both serve from the (unit, status) index."""
        query: Document = {"unit": unit.value, "status": {"$in": [s.value for s in self.statuses]}}
        if self.overdue is True:
            query["overdue"] = True
        elif self.overdue is False:
            query["overdue"] = {"$ne": True}  # a case follow-up has not marked is not overdue
        return query


def parse_queue_query(status: Sequence[str], overdue: str | None, limit: str | None) -> QueueQuery:
    problems: list[dict[str, str]] = []
    statuses: list[CaseStatus] = []
    for raw in status:
        for part in raw.split(","):
            value = part.strip()
            if not value:
                continue
            if value not in _STATUS_VALUES:
                problems.append(_problem("status", f"unknown status {_shown(value)}; one of: "
                                                   + ", ".join(_STATUS_VALUES)))
            elif CaseStatus(value) not in statuses:
                statuses.append(CaseStatus(value))
    flag: bool | None = None
    if overdue is not None:
        lowered = overdue.strip().lower()
        if lowered not in ("true", "false"):
            problems.append(_problem("overdue", "must be true or false"))
        flag = lowered == "true"
    count = DEFAULT_LIMIT
    if limit is not None:
        try:
            count = int(limit)
        except ValueError:
            count = 0
        if not 1 <= count <= MAX_LIMIT:
            problems.append(_problem("limit", f"must be an integer from 1 to {MAX_LIMIT}"))
    if problems:
        raise Problem("invalid_query", problems)
    # Without a status filter the queue is the open work; closed cases are asked for explicitly.
    chosen = tuple(statuses) if statuses else tuple(s for s in CaseStatus if s in OPEN_STATUSES)
    return QueueQuery(chosen, flag, count)


# --- ordering by deadline ----------------------------------------------------------------------------


def deadlines_of(case: Mapping[str, Any], *, include_met: bool = False) -> list[Document]:
    """The case's deadlines with a readable due date, nearest first; met ones (`met_at`, set by follow-up)
    only if asked for."""
    raw = case.get("deadlines")
    if not isinstance(raw, Mapping):
        return []
    found: list[tuple[date, Document]] = []
    for entry in raw.values():
        if not isinstance(entry, Mapping) or (entry.get("met_at") and not include_met):
            continue
        try:
            due = date.fromisoformat(str(entry.get("due")))
        except ValueError:
            continue  # an unreadable date must not break the whole queue
        found.append((due, dict(entry)))
    found.sort(key=lambda pair: (pair[0], str(pair[1].get("rule", ""))))
    return [entry for _, entry in found]


def _aware(value: Any) -> datetime:
    if not isinstance(value, datetime):
        return datetime.max.replace(tzinfo=UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _urgency_rank(value: Any) -> int:
    try:
        return Urgency(value).rank
    except ValueError:
        return -1


def queue_order(case: Mapping[str, Any]) -> tuple[date, int, datetime, str]:
    """Nearest due date first (none last), then the most urgent, then the oldest."""
    nearest = deadlines_of(case)
    due = date.fromisoformat(str(nearest[0]["due"])) if nearest else date.max
    return due, -_urgency_rank(case.get("urgency")), _aware(case.get("received_at")), str(case.get("_id"))


def order_queue(cases: Iterable[Mapping[str, Any]], limit: int) -> list[Mapping[str, Any]]:
    return sorted(cases, key=queue_order)[:limit]


# --- views --------------------------------------------------------------------------------------------


def _pick(doc: Mapping[str, Any], fields: Iterable[str]) -> Document:
    return {field: doc[field] for field in fields if field in doc}


def _deadline_view(entry: Mapping[str, Any]) -> Document:
    return _pick(entry, DEADLINE_FIELDS)


def case_summary(case: Mapping[str, Any]) -> Document:
    view: Document = {"case_id": case.get("_id")}
    view.update(_pick(case, SUMMARY_FIELDS))
    view.pop("deadlines", None)
    text = view.pop("text", None)
    if isinstance(text, str):
        view["excerpt"] = text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"
    view["overdue"] = bool(case.get("overdue"))
    nearest = deadlines_of(case)
    view["next_deadline"] = _deadline_view(nearest[0]) if nearest else None
    return view


def case_detail(case: Mapping[str, Any], unit: Unit) -> Document:
    view: Document = {"case_id": case.get("_id")}
    view.update(_pick(case, DETAIL_FIELDS))
    view["overdue"] = bool(case.get("overdue"))
    view["deadlines"] = [_deadline_view(d) for d in deadlines_of(case, include_met=True)]
    view["complainant"] = disclose(case.get("complainant"), unit)
    return view


def _without_personal(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_personal(v) for k, v in value.items() if k not in _PERSONAL_KEYS}
    if isinstance(value, list):
        return [_without_personal(v) for v in value]
    return value


def timeline_view(entries: Iterable[Mapping[str, Any]]) -> list[Document]:
    return [
        {"at": e.get("at"), "kind": e.get("kind"), "detail": _without_personal(e.get("detail") or {})}
        for e in entries
    ]


def action_view(action_id: str, record: Mapping[str, Any] | None) -> Document:
    """The follow-up's verdict on an action, or `submitted` while it has not recorded one."""
    if record is None or record.get("outcome") not in ("applied", "rejected"):
        return {"action_id": action_id, "status": "submitted"}
    view: Document = {"action_id": action_id, "status": record["outcome"]}
    view.update(_pick(record, ACTION_RECORD_FIELDS))
    return view


# --- actions ------------------------------------------------------------------------------------------


def _pydantic_problem(error: Mapping[str, Any]) -> dict[str, str]:
    field = ".".join(str(part) for part in error.get("loc", ())) or "body"
    ctx = error.get("ctx") or {}
    if error.get("type") in ("string_too_long", "too_long"):
        return _problem(field, f"{field} is too long: at most {ctx.get('max_length')} characters")
    if error.get("type") == "missing":
        return _problem(field, f"{field} is required")
    if error.get("type") == "extra_forbidden":
        return _problem(field, f"unknown field {field}")
    return _problem(field, str(error.get("msg", "invalid")))


def parse_action(body: Any, unit: Unit) -> DeskActionPayload:
    """A desk's action body (DeskActionPayload without `unit`, which the path and token decide)."""
    if not isinstance(body, dict):
        raise Problem("invalid_body", "the body must be a JSON object")
    problems: list[dict[str, str]] = []
    fields = dict(body)
    if "unit" in fields:
        problems.append(_problem("unit", "leave unit out: the desk is the one in the path and the token"))
        fields.pop("unit")
    action = fields.get("action")
    if action is None:
        problems.append(_problem("action", "action is required; one of: " + ", ".join(_DESK_ACTION_VALUES)))
    elif action not in _DESK_ACTION_VALUES:
        problems.append(_problem("action", "unknown action; one of: " + ", ".join(_DESK_ACTION_VALUES)))
    payload: DeskActionPayload | None = None
    try:
        payload = DeskActionPayload.model_validate({**fields, "unit": unit.value})
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            if error.get("loc", ("",))[0] != "action":  # already said above, more clearly
                problems.append(_pydantic_problem(error))
    if payload is not None:
        problems.extend(_action_rules(payload))
    if problems or payload is None:
        raise Problem("invalid_action", problems)
    return payload


def _action_rules(p: DeskActionPayload) -> list[dict[str, str]]:
    """What the payload's types cannot say: which fields each action needs or allows."""
    problems: list[dict[str, str]] = []
    if p.action in NEEDS_REASON and not (p.reason and p.reason.strip()):
        problems.append(_problem("reason", f"a reason is required to {p.action.value.replace('_', ' ')}"))
    if p.action is Action.RETURN_VISIT and p.satisfaction is None:
        problems.append(_problem("satisfaction",
                                 "a return visit must record the satisfaction: satisfied, basically_satisfied "
                                 "or dissatisfied"))
    if p.satisfaction is not None and p.action is not Action.RETURN_VISIT:
        problems.append(_problem("satisfaction", "satisfaction belongs to a return_visit only"))
    if p.extension_days is not None and p.action is not Action.REQUEST_EXTENSION:
        problems.append(_problem("extension_days", "extension_days belongs to a request_extension only"))
    return problems
