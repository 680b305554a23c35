"""What every page of the app shares: the Jinja2 templates, rendering, reading a form within the body limit,
the CSRF check, and the sign-in form (a desk's and a supervisor's, the same form with another heading)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from services.desk_api import labels, views
from services.desk_api.context import Context, context
from services.desk_api.errors import ApiError
from services.desk_api.forms import FORMS
from services.desk_api.sessions import SIGN_IN_COOKIE, Session

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
