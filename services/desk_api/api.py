"""The desk JSON API, for the desks' own systems: bearer token per unit, OpenAPI at /openapi.json.

A client-supplied `Idempotency-Key` makes a retried POST one action (the same key gives the same action id,
and the follow-up decides each id once); the same key with a different request is refused.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.desk_api import models
from services.desk_api.context import Context, context
from services.desk_api.disclosure import masked_view
from services.desk_api.errors import ApiError, not_found
from services.desk_api.handlers import KeyReused, NotFound, PublishFailed
from shared.domain.lifecycle import CaseStatus
from shared.domain.queue import QueueFilter
from shared.domain.triage import Category, Unit, Urgency
from shared.events import Channel

TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")
MAX_PAGE_SIZE = 200

bearer = HTTPBearer(auto_error=False, description="The unit's desk token (DESK_TOKENS).")
router = APIRouter(prefix="/desks/{unit}", tags=["desk"],
                   responses={401: {"model": models.Problem}, 404: {"model": models.Problem},
                              422: {"model": models.Problem}, 503: {"model": models.Problem}})


def desk_unit(request: Request, unit: Annotated[str, Path(description="The desk's unit.")],
              credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Unit:
    """The unit the token speaks for, if it is the unit in the path."""
    ctx = context(request)
    ctx.check_not_locked_out(request)
    found = ctx.authority.unit_for(f"Bearer {credentials.credentials}" if credentials else None)
    if found is None:
        ctx.failed_attempt(request)
        raise ApiError(401, "unauthorized", "a valid desk token is required (Authorization: Bearer <token>)",
                       {"WWW-Authenticate": 'Bearer realm="desk"'})
    request.scope["desk.unit"] = found.value  # for the request counter
    if unit != found.value:
        raise not_found()  # another unit's desk, or no such unit: the same answer either way
    return found


Desk = Annotated[Unit, Depends(desk_unit)]
Ctx = Annotated[Context, Depends(context)]


@router.get("/cases", response_model=models.Queue, summary="The unit's queue, what is due first on top")
async def queue(
    unit: Desk, ctx: Ctx,
    status: Annotated[list[CaseStatus] | None, Query(description="Repeat or comma-separate; default: open")] = None,
    urgency: Urgency | None = None, overdue: bool | None = None, category: Category | None = None,
    channel: Channel | None = None, needs_review: bool | None = None,
    q: Annotated[str | None, Query(max_length=128, description="A case id or the channel's ticket number")] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Cases per page")] = 50,
) -> models.Queue:
    wanted = QueueFilter(urgency=urgency, overdue=overdue, category=category,
                         channel=channel.value if channel else None, needs_review=needs_review, search=q or None,
                         **({"statuses": frozenset(status)} if status else {}))
    found = await ctx.desk.queue(unit, wanted, page, limit)
    return models.queue_view(unit, found, ctx.today(), ctx.calendar)


@router.get("/cases/{case_id}", summary="A case of the unit, its deadlines and timeline; the complainant masked")
async def case_detail(unit: Desk, ctx: Ctx, case_id: str) -> dict[str, Any]:
    case = await _own(ctx, unit, case_id)
    timeline = await ctx.desk.store.timeline_of(case_id)
    return {"case": models.case_detail(case, ctx.today(), ctx.calendar, masked_view(case)),
            "timeline": models.timeline_view(timeline)}


@router.post("/cases/{case_id}/reveal", summary="The complainant as the unit may see them; written to the audit trail")
async def reveal(unit: Desk, ctx: Ctx, case_id: str,
                 officer: Annotated[str, Query(min_length=1, max_length=64, description="Who asks")]) -> dict[str, Any]:
    try:
        shown = await ctx.desk.reveal(unit, officer, case_id, ctx.clock())
    except NotFound:
        raise not_found() from None
    return {"case_id": case_id, "complainant": shown}


@router.post("/cases/{case_id}/actions", status_code=202, response_model=models.ActionSubmitted,
             summary="Submit an action; the follow-up applies or refuses it (read it back by its id)")
async def act(
    unit: Desk, ctx: Ctx, case_id: str, body: models.ActionRequest, request: Request,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key",
                                                  description="Retries with the same key are one action")] = None,
) -> models.ActionSubmitted:
    problems = models.action_rules(body)
    if problems:
        raise ApiError(422, "invalid_action", problems)
    if idempotency_key is not None and not IDEMPOTENCY_KEY.match(idempotency_key):
        raise ApiError(422, "invalid_idempotency_key", "1 to 128 printable ASCII characters")
    traceparent = request.headers.get("traceparent")
    try:
        action_id = await ctx.desk.submit(case_id, body.payload(unit), key=idempotency_key, now=ctx.clock(),
                                          traceparent=traceparent if traceparent and TRACEPARENT.match(traceparent)
                                          else None)
    except NotFound:
        raise not_found() from None
    except KeyReused:
        raise ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used for a different request") \
            from None
    except PublishFailed:
        raise ApiError(503, "broker_unavailable", "the action was not submitted; try again",
                       {"Retry-After": "5"}) from None
    return models.ActionSubmitted(action_id=action_id)


@router.get("/actions/{action_id}", response_model=models.ActionStatus, response_model_exclude_none=True,
            summary="The outcome of an action")
async def action_status(unit: Desk, ctx: Ctx, action_id: str) -> models.ActionStatus:
    try:
        record = await ctx.desk.action(unit, action_id)
    except NotFound:
        raise not_found() from None
    return models.action_status(action_id, record)


async def _own(ctx: Context, unit: Unit, case_id: str) -> dict[str, Any]:
    try:
        return await ctx.desk.case(unit, case_id)
    except NotFound:
        raise not_found() from None
