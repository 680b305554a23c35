"""The desk JSON API's request and response models (its OpenAPI document is generated from them), and the
allow-listed views of a case. No I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from services.desk_api.disclosure import PERSONAL_KEYS
from services.desk_api.views import deadline_views
from shared.domain.lifecycle import DESK_ACTIONS, Action, CaseStatus, Satisfaction
from shared.domain.queue import Colour, QueuePage, countdown
from shared.domain.triage import Category, Unit, Urgency
from shared.domain.workdays import Calendar
from shared.events import CleanText, DeskActionPayload

Document = dict[str, Any]

# Fields of a case a desk sees in the detail; the complainant is added by disclosure.
DETAIL_FIELDS = (
    "status", "unit", "category", "urgency", "risk_flags", "channel", "location", "text", "external_ref",
    "occurred_at", "received_at", "routed_at", "accepted_at", "resolved_at", "closed_at", "updated_at", "routing",
    "routing_attempt", "overdue", "overdue_since", "overdue_rules", "repeat_count", "needs_review",
    "handback_reason", "excluded_units", "extension_used", "agreement", "satisfaction", "reopen_count",
    "escalated_from", "escalated_at", "matter", "linked_cases",
)


class Problem(BaseModel):
    error: str
    detail: Any = None


class QueueRow(BaseModel):
    case_id: str
    status: CaseStatus
    urgency: Urgency | None
    category: Category | None
    channel: str
    overdue: bool
    needs_review: bool
    external_ref: str | None
    received_at: datetime
    excerpt: str
    due: date | None = Field(description="The nearest open deadline's due date (the period ends at 24:00).")
    rule: str | None = Field(description="That deadline's rule.")
    working_days_left: int | None = Field(description="Negative when overdue.")
    countdown: Colour = Field(description="green; amber within one working day; red overdue; none without a deadline.")


class Queue(BaseModel):
    unit: Unit
    page: int
    pages: int
    total: int = Field(description="Cases matching the filter, over every page.")
    counts: dict[CaseStatus, int] = Field(description="Open cases per status, matching every filter but status.")
    cases: list[QueueRow]


class ActionRequest(BaseModel):
    """A desk's action; the unit is the one in the path and the token."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    action: Action
    actor: Annotated[CleanText, Field(min_length=1, max_length=64)] = Field(description="The officer acting.")
    note: Annotated[CleanText, Field(max_length=2000)] | None = Field(
        default=None, description="A progress note; the answer to the complainant, required to resolve.")
    reason: Annotated[CleanText, Field(max_length=500)] | None = Field(
        default=None, description="Required to hand back and to request an extension.")
    extension_days: Annotated[int, Field(ge=1, le=30)] | None = None
    satisfaction: Satisfaction | None = Field(default=None, description="Required for a return visit.")
    solved: bool | None = Field(
        default=None, description="A return visit's other answer: whether the complainant says it is solved.")
    amount: Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)] | None = Field(
        default=None, description="The sum a mediation agreement settles (元); record_agreement only.")

    def payload(self, unit: Unit) -> DeskActionPayload:
        return DeskActionPayload.model_validate({**self.model_dump(exclude_none=True), "unit": unit})


class ActionSubmitted(BaseModel):
    action_id: str
    status: str = "submitted"


class ActionStatus(BaseModel):
    action_id: str
    status: str = Field(description="submitted (not decided yet), applied or rejected.")
    case_id: str | None = None
    action: str | None = None
    actor: str | None = None
    reason: str | None = Field(default=None, description="Why it was rejected.")
    at: datetime | None = None
    before: str | None = None
    after: str | None = None


def action_rules(request: ActionRequest) -> list[dict[str, str]]:
    """What the types cannot say: which fields each action needs or allows."""
    problems: list[dict[str, str]] = []

    def problem(field: str, message: str) -> None:
        problems.append({"field": field, "message": message})

    if request.action not in DESK_ACTIONS:
        problem("action", "not a desk action; one of: " + ", ".join(sorted(a.value for a in DESK_ACTIONS)))
    if request.action in (Action.HAND_BACK, Action.REQUEST_EXTENSION) and not request.reason:
        problem("reason", f"a reason is required to {request.action.value.replace('_', ' ')}")
    if request.action is Action.RESOLVE and not request.note:
        problem("note", "resolving needs the answer given to the complainant (note)")
    if request.action is Action.RETURN_VISIT and request.satisfaction is None:
        problem("satisfaction", "a return visit must record the satisfaction: satisfied, basically_satisfied "
                                "or dissatisfied")
    if request.satisfaction is not None and request.action is not Action.RETURN_VISIT:
        problem("satisfaction", "satisfaction belongs to a return_visit only")
    if request.solved is not None and request.action is not Action.RETURN_VISIT:
        problem("solved", "solved belongs to a return_visit only")
    if request.extension_days is not None and request.action is not Action.REQUEST_EXTENSION:
        problem("extension_days", "extension_days belongs to a request_extension only")
    if request.amount is not None and request.action is not Action.RECORD_AGREEMENT:
        problem("amount", "amount belongs to a record_agreement only")
    return problems


def queue_view(unit: Unit, page: QueuePage, today: date, calendar: Calendar) -> Queue:
    rows = []
    for e in page.entries:
        left = countdown(e.due, today, calendar)
        shown = {k: v for k, v in asdict(e).items() if k not in ("version", "unit")}
        rows.append(QueueRow(**shown, working_days_left=left.working_days_left, countdown=left.colour))
    return Queue(unit=unit, page=page.page, pages=page.pages, total=page.total, counts=page.counts, cases=rows)


def case_detail(case: Mapping[str, Any], today: date, calendar: Calendar,
                complainant: Mapping[str, str] | None) -> Document:
    view: Document = {"case_id": case.get("_id")}
    view.update({field: case[field] for field in DETAIL_FIELDS if field in case})
    view["overdue"] = bool(case.get("overdue"))
    view["deadlines"] = [{"rule": d.rule, "source": d.source, "due": d.due, "met": d.met, "extended": d.extended,
                          "working_days_left": d.countdown.working_days_left, "countdown": d.countdown.colour.value}
                         for d in deadline_views(case, today, calendar)]
    view["complainant"] = dict(complainant) if complainant else None
    return view


def _without_personal(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_personal(v) for k, v in value.items() if k not in PERSONAL_KEYS}
    if isinstance(value, list):
        return [_without_personal(v) for v in value]
    return value


def timeline_view(entries: Iterable[Mapping[str, Any]]) -> list[Document]:
    return [{"at": e.get("at"), "kind": e.get("kind"), "detail": _without_personal(e.get("detail") or {})}
            for e in entries]


def action_status(action_id: str, record: Mapping[str, Any] | None) -> ActionStatus:
    """The follow-up's verdict on an action, or `submitted` while it has not recorded one."""
    if record is None or record.get("outcome") not in ("applied", "rejected"):
        return ActionStatus(action_id=action_id, status="submitted")
    fields = ("case_id", "action", "actor", "reason", "at", "before", "after")
    return ActionStatus(action_id=action_id, status=str(record["outcome"]),
                        **{f: record[f] for f in fields if record.get(f) is not None})
