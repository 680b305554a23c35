"""The desk app: the workbench pages and the JSON API, one FastAPI app. `uvicorn services.desk_api.main:app`.

FastAPI gives validation and the OpenAPI document (/openapi.json) from the same models. Its bundled
/docs pages load their scripts from a CDN, which district networks cannot reach: they are switched off.
Reads come from the case store; actions go to Kafka (shared/publishing.py).
Kafka being down does not stop the desks from reading: the broker is connected again on the next action.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import make_asgi_app
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from services.desk_api import api, errors, pages, supervisor_pages
from services.desk_api.auth import TokenAuthority
from services.desk_api.context import Context
from services.desk_api.handlers import Desk, DeskStore, Publish
from services.desk_api.sessions import Sessions
from services.desk_api.supervision import Supervision
from shared import topics
from shared.adapters.memory import MemoryFigures
from shared.adapters.mongo import MongoDeskReads, MongoStorage
from shared.config import Settings, get_settings, refuse_unsafe
from shared.domain.triage import Unit
from shared.domain.workdays import default_calendar
from shared.events import DeskAction
from shared.limits import RateLimit
from shared.logging import configure_logging
from shared.metrics import REGISTRY
from shared.ports import FigureBook
from shared.publishing import KafkaPublisher

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
# Pages load only what this app serves; no frame may hold them (clickjacking a 签收 button).
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin", "X-Content-Type-Options": "nosniff",
}


class ActionPublisher:
    """Desk actions keyed by case id, so one case's actions stay in order on one partition."""

    def __init__(self, bootstrap_servers: str, timeout: float) -> None:
        self.kafka = KafkaPublisher(bootstrap_servers, timeout, client_id="triage-desk-api")

    async def __call__(self, event: DeskAction) -> None:
        await self.kafka.send(event, topics.DESK_ACTIONS, key=event.case_id.encode(),
                              headers={"event-type": event.event_type})

    async def connect(self) -> bool:
        return await self.kafka.connect()

    async def close(self) -> None:
        await self.kafka.close()


class _Metrics:
    """prometheus_client's app as a route (a plain function would be taken for a request handler). A scrape
    first brings the supervisors' gauges up to date, at most every EXPORT_SECONDS, and never fails for them."""

    EXPORT_SECONDS = 10.0

    def __init__(self, supervision: Supervision) -> None:
        self.app = make_asgi_app(registry=REGISTRY)
        self.supervision = supervision
        self.exported = float("-inf")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if time.monotonic() - self.exported >= self.EXPORT_SECONDS:
            self.exported = time.monotonic()
            try:
                await asyncio.wait_for(self.supervision.export(), 5.0)
            except Exception as exc:  # the store may be down: the services' own metrics still go out
                log.warning("supervisors' figures not exported: %s", type(exc).__name__)
        await self.app(scope, receive, send)


async def _warm(store: DeskStore, supervision: Supervision) -> None:
    """Read every unit's queue and the figures once at start, so the first desk to open its queue and the first
    supervisor to open the figures do not wait for a cold read (seconds, over a year of a busy district)."""
    for unit in Unit:
        try:
            await store.queue(unit)
        except Exception as exc:  # the store may not be up yet: the first page reads it then
            log.info("queue of %s not read ahead: %s", unit.value, type(exc).__name__)
    try:
        await supervision.overview(supervision.current_month())
    except Exception as exc:
        log.info("figures not read ahead: %s", type(exc).__name__)


def create_app(
    settings: Settings | None = None,
    *,
    store: DeskStore | None = None,
    publish: Publish | None = None,
    figures: FigureBook | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FastAPI:
    """The app; tests pass `store` and `publish` fakes, a deployment lets it build the real ones."""
    settings = refuse_unsafe(settings or get_settings(), "desk-api", serves_desks=True)
    authority = TokenAuthority(settings.desk_tokens)
    supervisors = TokenAuthority(dict.fromkeys(settings.supervisor_tokens, "supervisor"))
    storage: MongoStorage | None = None
    kafka: ActionPublisher | None = None
    if store is None:
        storage = MongoStorage.from_settings(settings, "desk_api", personal_data=True)  # the reveal decrypts
        store = MongoDeskReads(storage)
        figures = storage.figures
    if publish is None:
        kafka = ActionPublisher(settings.kafka_bootstrap_servers, settings.desk_publish_timeout_seconds)
        publish = kafka

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if storage is not None:  # a deployment, not a test: it owns the process's logging
            configure_logging("desk-api", settings.log_level)
        if authority.empty:  # DEV_MODE only: refuse_unsafe stops a deployment without tokens
            log.warning("no desk tokens configured (DESK_TOKENS): every desk request will be refused")
        if kafka is not None:
            await kafka.connect()
        warming = asyncio.create_task(_warm(store, app.state.context.supervision)) if storage is not None else None
        try:
            yield
        finally:
            if warming is not None:
                warming.cancel()
            if kafka is not None:
                await kafka.close()
            if storage is not None:
                await storage.close()

    app = FastAPI(title="Grievance triage: desk API", version="1", lifespan=lifespan, docs_url=None,
                  redoc_url=None, default_response_class=errors.SafeJSONResponse,
                  description="The desks' queue, cases and actions, for the units' own systems. Authenticate "
                              "with the unit's desk token; send an Idempotency-Key with each POST.")
    app.state.context = Context(
        desk=Desk(store, publish), authority=authority, supervisors=supervisors,
        sessions=Sessions(store.sessions, timedelta(hours=settings.desk_session_hours), clock),
        supervision=Supervision(figures or MemoryFigures(), settings.supervisor_floors, clock),
        failures=RateLimit(settings.desk_failed_attempts_per_minute),
        calendar=default_calendar(), clock=clock, max_body_bytes=settings.desk_max_body_bytes,
        secure_cookies=settings.desk_secure_cookies)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(supervisor_pages.router)
    app.add_exception_handler(pages.SignInRequired, pages.sign_in_required)
    errors.install(app, settings.desk_max_body_bytes)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if settings.desk_assets_dir is not None:  # served once `triage assets` has put them there
        app.mount("/assets", StaticFiles(directory=settings.desk_assets_dir, check_dir=False), name="assets")
    else:  # the pages work without it (plain forms and links), only without live refresh
        log.warning("no browser assets (DESK_ASSETS_DIR, `triage assets`): pages will not refresh by themselves")
    app.router.routes.append(Route("/metrics", _Metrics(app.state.context.supervision), methods=["GET"],
                                   include_in_schema=False))

    @app.middleware("http")
    async def page_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers.update(_PAGE_HEADERS)
        return response

    @app.get("/health", tags=["operations"], summary="Whether the case store answers")
    async def health() -> Response:
        ok = await store.ping()
        return errors.SafeJSONResponse({"service": "desk-api", "status": "ok" if ok else "degraded", "store": ok},
                                       200 if ok else 503)

    return app


@cache
def _deployed_app() -> FastAPI:
    return create_app()


def __getattr__(name: str) -> FastAPI:
    """`app` is built, and its settings checked, when uvicorn asks for it: importing this module (the tests
    do) needs no deployment settings."""
    if name == "app":
        return _deployed_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
