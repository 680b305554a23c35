"""Errors as the desks' systems read them ({"error", "detail"} JSON), and as the desks read them (a page).

Nothing a request did wrong becomes a traceback; only an exception's type is logged, since its message
could quote a complainant's data.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.domain.lifecycle import DESK_ACTIONS
from shared.metrics import DESK_API_REQUESTS
from shared.ports import StoreUnavailable

log = logging.getLogger(__name__)
NOT_FOUND = "no such desk, case or action"
DESK_ACTION_NAMES = frozenset(a.value for a in DESK_ACTIONS)


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


# `<`, `>` and `&` never occur in JSON outside strings, so replacing them is exact; U+2028/9 end a line in
# pre-ES2019 script. Complaint text reaches desk pages: a `</script>` in it must stay text.
_EMBED_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                             "\u2028": "\\u2028", "\u2029": "\\u2029"})


class SafeJSONResponse(JSONResponse):
    """JSON that is safe to embed in a page, and never cached by a shared proxy."""

    def __init__(self, content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None,
                 **kwargs: Any) -> None:
        merged = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", **(headers or {})}
        super().__init__(content, status_code, merged, **kwargs)

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, separators=(",", ":"), default=_default)
        return text.translate(_EMBED_SAFE).encode("utf-8")


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: Any = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(code)
        self.status, self.code, self.detail, self.headers = status, code, detail, dict(headers or {})


def not_found() -> ApiError:
    return ApiError(404, "not_found", NOT_FOUND)


def _is_page(request: Request) -> bool:
    return request.url.path == "/" or request.url.path.startswith("/desk/")


def _page(status: int, message: str) -> HTMLResponse:
    # The templates are not needed for this one line, and an error page must not fail itself.
    body = (f'<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>出错了</title>'
            f'<link rel="stylesheet" href="/static/desk.css"><main class="error"><h1>{status}</h1>'
            f'<p>{message}</p><p><a href="/desk/">返回待办</a></p></main></html>')
    return HTMLResponse(body, status, headers={"Cache-Control": "no-store"})


_PAGE_MESSAGES = {401: "请先登录。", 403: "请求被拒绝：表单已过期或缺少校验码，请返回重试。",
                  404: "没有这个案件，或它不属于本单位。", 405: "不支持的请求。", 413: "提交的内容过大。",
                  422: "提交的内容有误。",
                  503: "暂时无法连接案件库或消息服务，请稍后重试。"}


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    if _is_page(request):
        return _page(exc.status, _PAGE_MESSAGES.get(exc.status, "请求无法完成。"))
    return SafeJSONResponse({"error": exc.code, "detail": exc.detail}, exc.status, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400:  # FastAPI could not parse the body (e.g. JSON nested past the parser's depth)
        return await _api_error(request, ApiError(422, "invalid_json", "the body must be a JSON object (UTF-8)"))
    codes = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}
    detail = NOT_FOUND if exc.status_code == 404 else exc.detail
    return await _api_error(request, ApiError(exc.status_code, codes.get(exc.status_code, "http_error"), detail,
                                              exc.headers))


def _problem(error: Mapping[str, Any]) -> dict[str, str]:
    """One validation error as {"field", "message"}, said plainly."""
    loc = [str(part) for part in error.get("loc", ())]
    field = ".".join(loc[1:]) or loc[0] if loc else "body"
    kind, ctx = error.get("type"), error.get("ctx") or {}
    if field == "action" and kind == "enum":
        return {"field": field, "message": "unknown action; one of: " + ", ".join(sorted(DESK_ACTION_NAMES))}
    messages = {
        "string_too_long": f"{field} is too long: at most {ctx.get('max_length')} characters",
        "too_long": f"{field} is too long: at most {ctx.get('max_length')} characters",
        "missing": f"{field} is required",
        "extra_forbidden": f"unknown field {field}" if field != "unit" else
        "leave unit out: the desk is the one in the path and the token",
    }
    return {"field": field, "message": messages.get(str(kind), str(error.get("msg", "invalid")))}


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    found = list(exc.errors())
    where = {str(e.get("loc", ("body",))[0]) for e in found}
    if any(e.get("type") == "json_invalid" for e in found):
        return await _api_error(request, ApiError(422, "invalid_json", "the body must be a JSON object (UTF-8)"))
    if any(tuple(e.get("loc", ())) == ("body",) for e in found):
        return await _api_error(request, ApiError(422, "invalid_body", "the body must be a JSON object"))
    code = "invalid_action" if "body" in where else "invalid_query"
    return await _api_error(request, ApiError(422, code, [_problem(e) for e in found]))


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("case store unavailable: %s", type(exc).__name__)
    return await _api_error(request, ApiError(503, "store_unavailable", "the case store cannot be reached; try again",
                                              {"Retry-After": "5"}))


def install(app: FastAPI, max_body_bytes: int) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    app.add_middleware(Guard, max_body_bytes=max_body_bytes)


class _TooLarge(Exception):
    pass


class Guard:
    """Counts every request, by route template; refuses a body over the limit (declared or streamed) with 413;
    turns any failure left over into a 500, never a traceback."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status, started, received = 500, False, 0
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        too_large = declared.isdigit() and int(declared) > self.max_body_bytes

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = int(message["status"]), True
            await send(message)

        try:
            if too_large:
                raise _TooLarge
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            status = 413
            if not started:
                reply = SafeJSONResponse({"error": "body_too_large",
                                          "detail": f"the body may have at most {self.max_body_bytes} bytes"}, 413)
                await reply(scope, receive, send)
        except Exception as exc:
            log.error("request failed: %s", type(exc).__name__)
            status = 500
            if not started:
                reply = SafeJSONResponse({"error": "internal_error", "detail": "the request could not be completed"},
                                         500)
                await reply(scope, receive, send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            DESK_API_REQUESTS.labels(scope.get("desk.unit", "none"), template, str(status)).inc()
