"""What every page of the app shares: the Jinja2 templates, rendering, reading a form within the body limit,
the CSRF check, and the sign-in form (a desk's and a supervisor's, the same form with another heading)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from services.desk_api import views
from services.desk_api.context import Context, context
from services.desk_api.errors import ApiError
from services.desk_api.forms import FORMS
from services.desk_api.sessions import SIGN_IN_COOKIE, Session
from shared import labels
from shared.domain.triage import Unit

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.globals.update(L=labels, label=labels.label, FORMS=FORMS)
templates.env.filters["local"] = views.local_time


async def read_form(request: Request, ctx: Context) -> dict[str, str]:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > ctx.max_body_bytes:
        raise ApiError(413, "body_too_large")
    form = await request.form(max_files=0, max_fields=20)
    return {k: v for k, v in form.items() if isinstance(v, str)}


def check_csrf(session: Session, form: dict[str, str]) -> None:
    if not session.csrf_matches(form.get("csrf")):
        raise ApiError(403, "csrf", "the form's CSRF token is missing or wrong")


def check_sign_in_csrf(request: Request, form: dict[str, str]) -> None:
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    if not expected or not secrets.compare_digest(expected.encode(), form.get("csrf", "").encode()):
        raise ApiError(403, "csrf", "the sign-in form's CSRF token is missing or wrong")


def render(request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, values, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def sign_in_form(request: Request, errors: dict[str, str], officer: str = "", status: int = 200, *,
                 supervisor: bool = False) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "signin.html", status, errors=errors, officer=officer, csrf=token,
                      supervisor=supervisor)
    response.set_cookie(SIGN_IN_COOKIE, token, max_age=1800, httponly=True, samesite="strict", path="/",
                        secure=context(request).secure_cookies)
    return response


def sign_in_errors(token_known: bool, officer: str | None, officer_label: str) -> dict[str, str]:
    errors = {} if token_known else {"token": "口令不正确"}
    if officer is None:
        errors["officer"] = f"请填写{officer_label}（1 至 32 个字，不含符号 < > & 和引号）"
    return errors


async def open_session(ctx: Context, unit: Unit | None, officer: str, *, cookie: str, home: str,
                       path: str) -> Response:
    """The session of a desk (`unit`) or a supervisor (None), in an HttpOnly, SameSite=Strict cookie."""
    value, _ = await ctx.sessions.sign_in(unit, officer)
    response = RedirectResponse(home, 303)
    response.set_cookie(cookie, value, max_age=int(ctx.sessions.lifetime.total_seconds()), httponly=True,
                        samesite="strict", path=path, secure=ctx.secure_cookies)
    response.delete_cookie(SIGN_IN_COOKIE, path="/")
    return response


async def close_session(request: Request, ctx: Context, session: Session, *, cookie: str, to: str,
                        path: str) -> Response:
    check_csrf(session, await read_form(request, ctx))
    await ctx.sessions.sign_out(request.cookies.get(cookie, ""))
    response = RedirectResponse(to, 303)
    response.delete_cookie(cookie, path=path)
    return response
