"""The desk API's routes, behind two small ports (the case store and the event publisher).

Reads come from the case store; an action is published as a DeskAction event and nothing more: the
follow-up service, the single writer of case status, checks it against the state machine and records
the outcome in `desk_actions`, which `GET /desks/{unit}/actions/{id}` reads back.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import date, datetime
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.desk_api import models
from services.desk_api.auth import TokenAuthority
from services.desk_api.models import Document, Problem
from shared.domain.triage import Unit
from shared.events import Channel, DeskAction
from shared.metrics import DESK_API_REQUESTS
from shared.ports import StoreUnavailable

log = logging.getLogger(__name__)



class PublishFailed(Exception):
    """The broker did not confirm the event: 503; the action was not (reliably) submitted."""


class DeskStore(Protocol):
    async def ping(self) -> bool: ...

    async def find_cases(self, query: Mapping[str, Any], limit: int) -> list[Document]:
        """Cases matching `query` (equality, $in, $ne only), oldest `received_at` first, at most `limit`."""
        ...

    async def get_case(self, case_id: str) -> Document | None: ...

    async def timeline_of(self, case_id: str) -> list[Document]: ...

    async def get_action(self, action_id: str) -> Document | None: ...


Publish = Callable[[DeskAction], Awaitable[None]]
Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]


# --- JSON that is safe to embed in a page ----------------------------------------------------------


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


# `<`, `>` and `&` never occur in JSON outside strings, so replacing them is exact; U+2028/9 end a line in
# pre-ES2019 script. Complaint text reaches desk pages: a `</script>` in it must stay text.
_EMBED_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                             "\u2028": "\\u2028", "\u2029": "\\u2029"})


def dump_json(content: Any) -> bytes:
    text = json.dumps(content, ensure_ascii=False, separators=(",", ":"), default=_default)
    return text.translate(_EMBED_SAFE).encode("utf-8")


class SafeJSONResponse(Response):
    media_type = "application/json"

    def __init__(self, content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> None:
        merged = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", **(headers or {})}
        super().__init__(content, status_code, merged)

    def render(self, content: Any) -> bytes:
        return dump_json(content)


def error(status: int, code: str, detail: Any = None, headers: Mapping[str, str] | None = None) -> SafeJSONResponse:
    return SafeJSONResponse({"error": code, "detail": detail}, status, headers)


NOT_FOUND = "no such desk, case or action"


def not_found() -> SafeJSONResponse:
    return error(404, "not_found", NOT_FOUND)


# --- the API ------------------------------------------------------------------------------------------


class DeskApi:
    def __init__(self, store: DeskStore, publish: Publish, authority: TokenAuthority, *,
                 scan_limit: int = 1000, max_body_bytes: int = 16 * 1024) -> None:
        self.store = store
        self.publish = publish
        self.authority = authority
        self.scan_limit = scan_limit
        self.max_body_bytes = max_body_bytes

    def _desk(self, request: Request) -> Unit | SafeJSONResponse:
        """The unit the token speaks for, if it is the unit in the path; otherwise the response to send."""
        unit = self.authority.unit_for(request.headers.get("authorization"))
        if unit is None:
            return error(401, "unauthorized", "a valid desk token is required (Authorization: Bearer <token>)",
                         {"WWW-Authenticate": 'Bearer realm="desk"'})
        request.scope["desk.unit"] = unit.value  # for the request counter
        if request.path_params.get("unit") != unit.value:
            return not_found()  # another unit's desk, or no such unit: the same answer either way
        return unit

    async def queue(self, request: Request) -> Response:
        unit = self._desk(request)
        if not isinstance(unit, Unit):
            return unit
        params = request.query_params
        try:
            query = models.parse_queue_query(params.getlist("status"), params.get("overdue"), params.get("limit"))
        except Problem as exc:
            return error(422, exc.error, exc.detail)
        found = await self.store.find_cases(query.mongo_filter(unit), self.scan_limit)
        page = models.order_queue(found, query.limit)
        return SafeJSONResponse({
            "unit": unit.value,
            "count": len(page),
            # The scan bound was reached: cases received later than those scanned are not in this answer.
            "truncated": len(found) >= self.scan_limit,
            "cases": [models.case_summary(case) for case in page],
        })

    async def _own_case(self, unit: Unit, case_id: str) -> Document | None:
        if not models.SAFE_ID.match(case_id):
            return None
        case = await self.store.get_case(case_id)
        if case is None or case.get("unit") != unit.value:
            return None
        return case

    async def detail(self, request: Request) -> Response:
        unit = self._desk(request)
        if not isinstance(unit, Unit):
            return unit
        case_id = request.path_params["case_id"]
        case = await self._own_case(unit, case_id)
        if case is None:
            return not_found()
        timeline = await self.store.timeline_of(case_id)
        return SafeJSONResponse({"case": models.case_detail(case, unit), "timeline": models.timeline_view(timeline)})

    async def _json_body(self, request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise HTTPException(413, f"the body may have at most {self.max_body_bytes} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > self.max_body_bytes:
                raise HTTPException(413, f"the body may have at most {self.max_body_bytes} bytes")
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise Problem("invalid_json", "the body must be a JSON object (UTF-8)") from None

    async def act(self, request: Request) -> Response:
        unit = self._desk(request)
        if not isinstance(unit, Unit):
            return unit
        case_id = request.path_params["case_id"]
        try:
            payload = models.parse_action(await self._json_body(request), unit)
        except Problem as exc:
            return error(422, exc.error, exc.detail)
        case = await self._own_case(unit, case_id)
        if case is None:
            return not_found()
        try:
            channel = Channel(str(case.get("channel")))
        except ValueError:
            log.error("case has no valid channel", extra={"case_id": case_id})
            return error(500, "internal_error", "the case record is incomplete")
        traceparent = request.headers.get("traceparent")
        event = DeskAction(
            event_id=f"DA-{uuid.uuid4().hex}",
            case_id=case_id,
            source_channel=channel,
            traceparent=traceparent if traceparent and models.TRACEPARENT.match(traceparent) else None,
            payload=payload,
        )
        try:
            await self.publish(event)
        except PublishFailed:
            log.warning("desk action not published", extra={"case_id": case_id, "unit": unit.value})
            return error(503, "broker_unavailable", "the action was not submitted; try again",
                         {"Retry-After": "5"})
        log.info("desk action submitted: %s", payload.action.value,
                 extra={"case_id": case_id, "event_id": event.event_id, "unit": unit.value})
        return SafeJSONResponse({"action_id": event.event_id, "status": "submitted"}, 202)

    async def action_status(self, request: Request) -> Response:
        unit = self._desk(request)
        if not isinstance(unit, Unit):
            return unit
        action_id = request.path_params["action_id"]
        if not models.SAFE_ID.match(action_id):
            return not_found()
        record = await self.store.get_action(action_id)
        # The record names the acting desk: another unit's action is as unknown as a missing one.
        if record is not None and record.get("unit") != unit.value:
            return not_found()
        return SafeJSONResponse(models.action_view(action_id, record))

    async def health(self, request: Request) -> Response:
        ok = await self.store.ping()
        return SafeJSONResponse({"service": "desk-api", "status": "ok" if ok else "degraded", "store": ok},
                                200 if ok else 503)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/health", self.health, methods=["GET"]),
            Route("/desks/{unit}/cases", self.queue, methods=["GET"]),
            Route("/desks/{unit}/cases/{case_id}", self.detail, methods=["GET"]),
            Route("/desks/{unit}/cases/{case_id}/actions", self.act, methods=["POST"]),
            Route("/desks/{unit}/actions/{action_id}", self.action_status, methods=["GET"]),
        ]


# --- errors and counting ------------------------------------------------------------------------------


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}
    detail = NOT_FOUND if exc.status_code == 404 else exc.detail
    return error(exc.status_code, codes.get(exc.status_code, "http_error"), detail, exc.headers)


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return error(422, exc.error, exc.detail)


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("case store unavailable: %s", type(exc).__name__)
    return error(503, "store_unavailable", "the case store cannot be reached; try again", {"Retry-After": "5"})


class Guard:
    """Counts every request and turns any failure left over into a JSON 500, never a traceback.

    Only the exception's type is logged: its message could quote a complainant's data."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = int(message["status"]), True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.error("request failed: %s", type(exc).__name__)
            status = 500
            if not started:
                await error(500, "internal_error", "the request could not be completed")(scope, receive, send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            DESK_API_REQUESTS.labels(scope.get("desk.unit", "none"), template, str(status)).inc()


def build_app(
    store: DeskStore,
    publish: Publish,
    authority: TokenAuthority,
    *,
    scan_limit: int = 1000,
    max_body_bytes: int = 16 * 1024,
    extra_routes: list[BaseRoute] | None = None,
    lifespan: Lifespan | None = None,
) -> Starlette:
    api = DeskApi(store, publish, authority, scan_limit=scan_limit, max_body_bytes=max_body_bytes)
    return Starlette(
        routes=[*api.routes(), *(extra_routes or [])],
        middleware=[Middleware(Guard)],
        exception_handlers={
            HTTPException: _http_error,
            Problem: _problem,
            StoreUnavailable: _store_unavailable,
        },
        lifespan=lifespan,
    )
