"""The desk workbench: server-rendered pages in Chinese (Jinja2), with htmx for what changes while a desk
looks at it (new cases in the queue, an action's outcome). Every page works without JavaScript.

A desk signs in with its unit's token and the officer's name; the session cookie is HttpOnly and
SameSite=Strict, every form carries the session's CSRF token, and a form without it is refused.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from services.desk_api import views
from services.desk_api.context import Context, context
from services.desk_api.disclosure import masked_view, may_reveal
from services.desk_api.errors import ApiError
from services.desk_api.forms import FORMS, FormErrors, available, parse_form
from services.desk_api.handlers import NotFound, PublishFailed
from services.desk_api.sessions import COOKIE, DeskSession, valid_officer
from services.desk_api.web import (
    check_csrf,
    check_sign_in_csrf,
    close_session,
    open_session,
    read_form,
    render,
    sign_in_errors,
    sign_in_form,
)
from shared.domain.lifecycle import Action, CaseStatus
from shared.domain.queue import QueueFilter
from shared.domain.triage import Category, Urgency

PAGE_SIZE = 50
router = APIRouter(include_in_schema=False)


class SignInRequired(Exception):
    """No valid session: the desk (or supervisor) is sent to the sign-in page (htmx is told to go there)."""

    def __init__(self, to: str = "/desk/signin") -> None:
        super().__init__(to)
        self.to = to


async def signed_in(request: Request) -> DeskSession:
    session = await context(request).sessions.current(request.cookies.get(COOKIE))
    if session is None:
        raise SignInRequired
    request.scope["desk.unit"] = session.unit.value
    return session


async def sign_in_required(request: Request, exc: Exception) -> Response:
    to = exc.to if isinstance(exc, SignInRequired) else "/desk/signin"
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"HX-Redirect": to})
    return RedirectResponse(to, 303)


Session = Annotated[DeskSession, Depends(signed_in)]
Ctx = Annotated[Context, Depends(context)]


# --- signing in and out -----------------------------------------------------------------------------


@router.get("/")
async def home() -> Response:
    return RedirectResponse("/desk/", 303)


@router.get("/desk/signin")
async def sign_in_page(request: Request) -> Response:
    return sign_in_form(request, {})


@router.post("/desk/signin")
async def sign_in(request: Request, ctx: Ctx) -> Response:
    form = await read_form(request, ctx)
    check_sign_in_csrf(request, form)
    ctx.check_not_locked_out(request)
    unit = ctx.authority.unit_for(f"Bearer {form.get('token', '')}")
    officer = valid_officer(form.get("officer", ""))
    if unit is None:
        ctx.failed_attempt(request)
    if unit is None or officer is None:
        return sign_in_form(request, sign_in_errors(unit is not None, officer, "经办人姓名"),
                            form.get("officer", "")[:32], 422)
    return await open_session(ctx, unit, officer, cookie=COOKIE, home="/desk/", path="/")


@router.post("/desk/signout")
async def sign_out(request: Request, ctx: Ctx, session: Session) -> Response:
    return await close_session(request, ctx, session, cookie=COOKIE, to="/desk/signin", path="/")


# --- the queue ---------------------------------------------------------------------------------------


def _choice(enum: Any, value: str | None) -> Any:
    try:
        return enum(value) if value else None
    except ValueError:
        return None  # a hand-edited address shows the unfiltered queue rather than an error


def _flag(value: str | None) -> bool | None:
    return {"1": True, "0": False}.get(value or "")


def _queue_query(request: Request) -> tuple[QueueFilter, dict[str, str], int]:
    params = request.query_params
    status = _choice(CaseStatus, params.get("status"))
    wanted = QueueFilter(urgency=_choice(Urgency, params.get("urgency")), overdue=_flag(params.get("overdue")),
                         category=_choice(Category, params.get("category")),
                         channel=(params.get("channel") or None), needs_review=_flag(params.get("review")),
                         search=(params.get("q") or "").strip()[:128] or None,
                         **({"statuses": frozenset({status})} if status else {}))
    kept = {k: params[k] for k in ("status", "urgency", "overdue", "category", "channel", "review", "q")
            if params.get(k)}
    page = int(params["page"]) if params.get("page", "").isdigit() else 1
    return wanted, kept, min(page, 100_000)


async def _queue_values(request: Request, ctx: Context, session: DeskSession) -> dict[str, Any]:
    wanted, kept, page = _queue_query(request)
    found = await ctx.desk.queue(session.unit, wanted, page, PAGE_SIZE)
    return {"session": session, "page": found, "rows": views.rows(found.entries, ctx.today(), ctx.calendar),
            "kept": kept, "query": urlencode(kept), "now": views.local_time(ctx.clock()),
            "page_link": lambda n: "?" + urlencode({**kept, "page": n}),
            "status_link": lambda s: "?" + urlencode({k: v for k, v in {**kept, "status": s}.items() if v})}


@router.get("/desk/")
async def queue_page(request: Request, ctx: Ctx, session: Session) -> Response:
    return render(request, "queue.html", **await _queue_values(request, ctx, session))


@router.get("/desk/queue/rows")
async def queue_rows(request: Request, ctx: Ctx, session: Session) -> Response:
    """The part of the queue page that changes, for htmx to swap in every few seconds."""
    return render(request, "queue_rows.html", **await _queue_values(request, ctx, session))


# --- a case ------------------------------------------------------------------------------------------


async def _case_page(request: Request, ctx: Context, session: DeskSession, case_id: str, *, status: int = 200,
                     errors: dict[str, str] | None = None, failed: Action | None = None,
                     form: dict[str, str] | None = None, revealed: dict[str, str] | None = None,
                     notice: str | None = None) -> Response:
    # The action's outcome before the case: the follow-up saves the case, then records the outcome, so an
    # outcome read first is already in the case read after it (the other way round could show it decided
    # on a case read before it was applied, with nothing left to refresh the page).
    action_id = request.query_params.get("action")
    action_record = None
    if action_id:
        try:
            action_record = await ctx.desk.action(session.unit, action_id)
        except NotFound:
            action_id = None
    try:
        case = await ctx.desk.case(session.unit, case_id)
    except NotFound:
        raise ApiError(404, "not_found") from None
    entries = await ctx.desk.store.timeline_of(case_id)
    reasons = views.reasons_of(case)
    status_now = _choice(CaseStatus, case.get("status")) or CaseStatus.RECEIVED
    return render(
        request, "case.html", status, session=session, case=case, case_id=case_id,
        text=views.highlight(str(case.get("text", "")), reasons.terms), reasons=reasons,
        deadlines=views.deadline_views(case, ctx.today(), ctx.calendar),
        timeline=views.timeline_views(entries), merged=views.merged_reports(entries),
        complainant=revealed if revealed is not None else masked_view(case),
        revealed=revealed is not None, may_reveal=may_reveal(session.unit) and bool(case.get("complainant")),
        actions=available(status_now, session.unit, bool(case.get("extension_used"))),
        errors=errors or {}, failed=failed, form=form or {}, form_key=uuid.uuid4().hex, notice=notice,
        action_id=action_id, record=action_record,
        received=views.local_time(case.get("received_at")),
    )


@router.get("/desk/cases/{case_id}")
async def case_page(request: Request, ctx: Ctx, session: Session, case_id: str) -> Response:
    return await _case_page(request, ctx, session, case_id)


@router.post("/desk/cases/{case_id}/reveal")
async def reveal(request: Request, ctx: Ctx, session: Session, case_id: str) -> Response:
    check_csrf(session, await read_form(request, ctx))
    try:
        shown = await ctx.desk.reveal(session.unit, session.officer, case_id, ctx.clock())
    except NotFound:
        raise ApiError(404, "not_found") from None
    return await _case_page(request, ctx, session, case_id, revealed=shown or {},
                            notice="已显示来访人信息，本次查看已记入审计日志")


@router.post("/desk/cases/{case_id}/actions/{action}")
async def act(request: Request, ctx: Ctx, session: Session, case_id: str, action: str) -> Response:
    form = await read_form(request, ctx)
    check_csrf(session, form)
    chosen = _choice(Action, action)
    if chosen not in FORMS:
        raise ApiError(404, "not_found")
    try:
        payload = parse_form(chosen, form, session.unit, session.officer)
    except FormErrors as exc:
        return await _case_page(request, ctx, session, case_id, status=422, errors=exc.errors, failed=chosen,
                                form=form)
    key = (form.get("form_key") or "")[:64] or None  # one rendered form, one action, however often it is sent
    try:
        action_id = await ctx.desk.submit(case_id, payload, key=f"form:{key}" if key else None, now=ctx.clock())
    except NotFound:
        raise ApiError(404, "not_found") from None
    except PublishFailed:
        return await _case_page(request, ctx, session, case_id, status=503, failed=chosen, form=form,
                                errors={"_": "消息服务暂时不可用，操作未提交，请稍后重试"})
    return RedirectResponse(f"/desk/cases/{case_id}?{urlencode({'action': action_id})}", 303)


@router.get("/desk/actions/{action_id}")
async def action_status(request: Request, ctx: Ctx, session: Session, action_id: str) -> Response:
    """An action's outcome, polled by the case page until the follow-up has decided it."""
    try:
        record = await ctx.desk.action(session.unit, action_id)
    except NotFound:
        raise ApiError(404, "not_found") from None
    response = render(request, "action_status.html", record=record, action_id=action_id)
    if record is not None and request.headers.get("hx-request"):
        response.headers["HX-Refresh"] = "true"  # decided: show the case as it is now
    return response
