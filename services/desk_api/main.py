"""Desk API deployment: `uvicorn services.desk_api.main:app`.

Wires the routes to the real case store (MongoDB or FerretDB, through the MongoDB adapter) and to Kafka (a
FastStream KafkaBroker used only to publish). Kafka being down does not stop the desks from reading:
the broker is connected at start-up if it can be, and again on the next action if it could not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache

from faststream.kafka import KafkaBroker
from prometheus_client import make_asgi_app
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from services.desk_api.auth import TokenAuthority
from services.desk_api.handlers import DeskStore, Publish, PublishFailed, build_app
from services.desk_api.models import SUMMARY_FIELDS
from shared import topics
from shared.adapters.mongo import MongoDeskReads, MongoStorage
from shared.config import Settings, get_settings, refuse_unsafe
from shared.events import DeskAction
from shared.logging import configure_logging
from shared.metrics import REGISTRY

log = logging.getLogger(__name__)



class KafkaPublisher:
    """Publishes desk actions keyed by case id, so one case's actions stay in order on one partition."""

    def __init__(self, bootstrap_servers: str, timeout: float) -> None:
        self.broker = KafkaBroker(
            bootstrap_servers,
            client_id="triage-desk-api",
            acks="all",  # an accepted action survives a broker restart
        )
        self.timeout = timeout
        self._connected = False
        self._lock = asyncio.Lock()

    async def connect(self) -> bool:
        async with self._lock:
            if not self._connected:
                try:
                    await asyncio.wait_for(self.broker.connect(), self.timeout)
                except Exception as exc:
                    log.warning("Kafka not reachable yet: %s", type(exc).__name__)
                    await self._reset()
                    return False
                self._connected = True
        return True

    async def _reset(self) -> None:
        try:
            await self.broker.stop()
        except Exception as exc:  # a half-open producer may fail to close; the next connect starts afresh
            log.debug("closing the Kafka producer failed: %s", type(exc).__name__)

    async def __call__(self, event: DeskAction) -> None:
        if not await self.connect():
            raise PublishFailed("broker not connected")
        try:
            await asyncio.wait_for(
                self.broker.publish(event, topics.DESK_ACTIONS, key=event.case_id.encode(),
                                    headers={"event-type": event.event_type}),
                self.timeout,
            )
        except Exception as exc:
            raise PublishFailed(type(exc).__name__) from exc

    async def close(self) -> None:
        async with self._lock:
            if self._connected:
                await self._reset()
                self._connected = False


class _Metrics:
    """prometheus_client's app as a Starlette endpoint (a plain function would be taken for a handler)."""

    def __init__(self) -> None:
        self.app = make_asgi_app(registry=REGISTRY)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    store: DeskStore | None = None,
    publish: Publish | None = None,
) -> Starlette:
    """The app; tests pass `store` and `publish` fakes, a deployment lets it build the real ones."""
    settings = refuse_unsafe(settings or get_settings(), "desk-api", serves_desks=True)
    authority = TokenAuthority(settings.desk_tokens)
    storage: MongoStorage | None = None
    kafka: KafkaPublisher | None = None
    if store is None:
        storage = MongoStorage.from_settings(settings, "desk_api")
        store = MongoDeskReads(storage, SUMMARY_FIELDS)
    if publish is None:
        kafka = KafkaPublisher(settings.kafka_bootstrap_servers, settings.desk_publish_timeout_seconds)
        publish = kafka

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if storage is not None:  # a deployment, not a test: it owns the process's logging
            configure_logging("desk-api", settings.log_level)
        if authority.empty:  # DEV_MODE only: refuse_unsafe stops a deployment without tokens
            log.warning("no desk tokens configured (DESK_TOKENS): every desk request will be refused")
        if kafka is not None:
            await kafka.connect()
        try:
            yield
        finally:
            if kafka is not None:
                await kafka.close()
            if storage is not None:
                await storage.close()

    return build_app(
        store, publish, authority,
        scan_limit=settings.desk_queue_scan_limit,
        max_body_bytes=settings.desk_max_body_bytes,
        extra_routes=[Route("/metrics", _Metrics(), methods=["GET"])],
        lifespan=lifespan,
    )


@cache
def _deployed_app() -> Starlette:
    return create_app()


def __getattr__(name: str) -> Starlette:
    """`app` is built, and its settings checked, when uvicorn asks for it: importing this module (the tests
    do) needs no deployment settings."""
    if name == "app":
        return _deployed_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
