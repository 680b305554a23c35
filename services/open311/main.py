"""The Open311 GeoReport v2 gateway. `uvicorn services.open311.main:app`.

Upstream systems (a city portal, a mobile app, FixMyStreet) post service requests form-encoded with their
`api_key` (OPEN311_KEYS names the upstream each key belongs to); each becomes a ChannelEvent on
triage.channel-events.v1, and the case is made asynchronously: the answer is a token, which
`tokens/{token}` turns into the case id once intake has made the case.

Reads: `requests/{id}` answers anyone for a request filed through this gateway, without the description,
the place and the answer (status_notes), which only the upstream that filed it sees with its api_key (the
PyPI `georeport` client sends no key when it reads). The list `requests` needs an api_key and lists that
upstream's own requests only. Nothing answers with a complainant's name, phone or e-mail.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from functools import cache
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import make_asgi_app
from starlette.exceptions import HTTPException
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from services.open311 import catalog, formats
from services.open311.gateway import (
    BASE,
    PUBLISH_TIMEOUT_SECONDS,
    REQUESTS,
    Gateway,
    Refused,
    discovery,
    fmt_of,
    split_format,
)
from services.open311.publish import ComplaintPublisher, Publish
from services.open311.store import MongoOpen311Store, Open311Store
from shared.config import ConfigurationRefused, Settings, get_settings, refuse_unsafe
from shared.events import Channel, utcnow
from shared.limits import RateLimit
from shared.logging import configure_logging
from shared.metrics import REGISTRY

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    store: Open311Store | None = None,
    publish: Publish | None = None,
    clock: Callable[[], datetime] = utcnow,
    limit: RateLimit | None = None,
) -> FastAPI:
    """The app; tests pass `store` and `publish` fakes, a deployment lets it build the real ones."""
    settings = refuse_unsafe(settings or get_settings(), "open311", serves_open311=True)
    try:
        for upstream, channel in settings.open311_channels.items():
            Channel(channel)
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", upstream):
                raise ValueError
    except ValueError:
        raise ConfigurationRefused("invalid settings: OPEN311_CHANNELS: a JSON object of upstream name to one of "
                                   + ", ".join(c.value for c in Channel)) from None
    storage = None
    kafka: ComplaintPublisher | None = None
    if store is None:
        from shared.adapters.mongo import MongoStorage

        storage = MongoStorage.from_settings(settings, "open311")
        store = MongoOpen311Store(storage)
    if publish is None:
        kafka = ComplaintPublisher(settings.kafka_bootstrap_servers, PUBLISH_TIMEOUT_SECONDS)
        publish = kafka
    gateway = Gateway(settings, store, publish, clock, limit or RateLimit(settings.open311_rate_per_minute))
    the_store = store

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if storage is not None:
            configure_logging("open311", settings.log_level)
        if not settings.open311_keys:
            log.warning("no Open311 api keys configured (OPEN311_KEYS): every post will be refused")
        if kafka is not None:
            await kafka.connect()
        try:
            yield
        finally:
            if kafka is not None:
                await kafka.close()
            if storage is not None:
                await storage.close()

    app = FastAPI(title="Grievance triage: Open311 GeoReport v2 gateway", version="1", lifespan=lifespan,
                  docs_url=None, redoc_url=None)

    def upstream_name(request: Request) -> str:
        key = request.query_params.get("api_key")
        return settings.open311_keys.get(key or "", "-")

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        REQUESTS.labels(upstream_name(request), _endpoint(request), str(exc.status)).inc()
        return formats.errors(fmt_of(request.url.path), exc.status, exc.descriptions, exc.headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = {404: "not found", 405: "method not allowed"}.get(exc.status_code, "request refused")
        return formats.errors(fmt_of(request.url.path), exc.status_code, [message], exc.headers)

    async def failed(request: Request, exc: Exception) -> Response:
        log.error("open311 request failed: %s", type(exc).__name__)  # the type only: the message may quote data
        return formats.errors(fmt_of(request.url.path), 503, ["temporarily unavailable, try again"])

    app.add_exception_handler(Refused, refused)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, failed)

    def reads(request: Request) -> str | None:
        key = request.query_params.get("api_key")
        gateway.charge(request, key)
        return gateway.upstream_of(key)

    def answer(request: Request, fmt: str, kind: str, content: Any, status: int = 200) -> Response:
        REQUESTS.labels(upstream_name(request), _endpoint(request), str(status)).inc()
        return formats.render(fmt, kind, content, status)

    @app.get(BASE + "/{resource}")
    async def collection(resource: str, request: Request) -> Response:
        name, fmt = split_format(resource)
        if name == "discovery":
            reads(request)
            return answer(request, fmt, "discovery", discovery(str(request.base_url).rstrip("/")))
        if name == "services":
            reads(request)
            return answer(request, fmt, "services", list(catalog.services()))
        if name == "requests":
            upstream = reads(request)
            if upstream is None:
                raise Refused(403, "api_key is required to list requests (an upstream lists its own)")
            params = {k: v for k, v in request.query_params.items()}
            return answer(request, fmt, "requests", await gateway.listed(params, upstream))
        raise Refused(404, "not found")

    @app.post(BASE + "/{resource}")
    async def create(resource: str, request: Request) -> Response:
        name, fmt = split_format(resource)
        if name != "requests":
            raise Refused(404, "not found")
        return answer(request, fmt, "requests", await gateway.post(request))

    @app.get(BASE + "/services/{name}")
    async def definition(name: str, request: Request) -> Response:
        code, fmt = split_format(name)
        reads(request)
        if catalog.service(code) is None:
            raise Refused(404, "no such service_code")
        return answer(request, fmt, "service_definition", {"service_code": code, "attributes": []})

    @app.get(BASE + "/requests/{name}")
    async def one(name: str, request: Request) -> Response:
        case_id, fmt = split_format(name)
        upstream = reads(request)
        return answer(request, fmt, "requests", [await gateway.one(case_id, upstream)])

    @app.get(BASE + "/tokens/{name}")
    async def token(name: str, request: Request) -> Response:
        token_id, fmt = split_format(name)
        reads(request)
        found = await gateway.case_for_token(token_id)
        if found is None:
            raise Refused(404, "no service request for this token yet: try again shortly")
        return answer(request, fmt, "requests", [{"service_request_id": found[0], "token": token_id}])

    app.router.routes.append(Route("/metrics", _Metrics(), methods=["GET"], include_in_schema=False))

    @app.get("/health")
    async def health() -> Response:
        ok = await the_store.ping()
        return JSONResponse({"service": "open311", "status": "ok" if ok else "degraded", "store": ok},
                            200 if ok else 503)

    return app


class _Metrics:
    """prometheus_client's app as a route (a plain function would be taken for a request handler)."""

    def __init__(self) -> None:
        self.app = make_asgi_app(registry=REGISTRY)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def _endpoint(request: Request) -> str:
    path = request.url.path.removeprefix(BASE + "/")
    return path.split("/")[0].split(".")[0] if path != request.url.path else "other"


@cache
def _deployed_app() -> FastAPI:
    return create_app()


def __getattr__(name: str) -> FastAPI:
    """`app` is built, and its settings checked, when uvicorn asks for it: importing this module needs no
    deployment settings."""
    if name == "app":
        return _deployed_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
