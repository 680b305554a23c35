"""What every service is made of: a Kafka broker with Prometheus middleware, the case store, a
dead-letter publisher, and an ASGI app serving /health, /metrics and the AsyncAPI document."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from faststream import AckPolicy
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.response import JSONResponse
from faststream.asgi.types import ASGIApp, Scope
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.kafka.publisher.usecase import DefaultPublisher
from faststream.kafka.subscriber.usecase import DefaultSubscriber
from faststream.message import StreamMessage
from prometheus_client import make_asgi_app

from shared import topics
from shared.config import Settings, get_settings
from shared.events import Envelope, utcnow
from shared.handling import Backoff, DeadLetter, Rejected, Source, retry_transient
from shared.logging import configure_logging
from shared.metrics import DEAD_LETTERS, REGISTRY, STAGE_SECONDS
from shared.store import CaseStore

log = logging.getLogger(__name__)

Work = Callable[[bytes], Awaitable[None]]


async def _undecoded(message: StreamMessage[Any]) -> bytes:
    return message.body


class Service:
    """One deployable service. Handlers get its store and publishers; it owns the plumbing."""

    def __init__(self, name: str, settings: Settings | None = None) -> None:
        self.name = name
        self.settings = settings or get_settings()
        configure_logging(name, self.settings.log_level)
        self.broker = KafkaBroker(
            self.settings.kafka_bootstrap_servers,
            client_id=f"triage-{name}",
            middlewares=[KafkaPrometheusMiddleware(registry=REGISTRY, app_name=name)],
            # Wait for the whole in-sync replica set: an acknowledged publish survives a broker restart.
            # No idempotent producer: consumers are idempotent anyway, and a broker that restarts without
            # its producer state leaves an idempotent producer retrying an out-of-order sequence forever.
            acks="all",
        )
        self.store = CaseStore.from_settings(self.settings)
        self.backoff = Backoff(self.settings.retry_initial_seconds, self.settings.retry_max_seconds)
        self.dead_letters = self.broker.publisher(
            topics.DEAD_LETTER,
            title="dead-letter",
            description="Events that could not be processed; the reason is in the x-dlq-* headers.",
        )

    @property
    def group_id(self) -> str:
        return f"{self.settings.consumer_group_prefix}.{self.name}"

    def subscriber(self, topic: str, *, title: str, description: str | None = None) -> DefaultSubscriber:
        """A consumer in this service's group that commits an offset only after its work is done.

        The body reaches the handler undecoded: FastStream would otherwise parse JSON itself, before the
        handler can dead-letter what does not parse, and a nack would replay the poison message forever."""
        return self.broker.subscriber(
            topic,
            group_id=self.group_id,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            decoder=_undecoded,
            title=title,
            description=description,
        )

    def publisher(self, topic: str, schema: type[Envelope], description: str) -> DefaultPublisher:
        return self.broker.publisher(topic, schema=schema, title=topic, description=description)

    async def publish(self, publisher: DefaultPublisher, event: Envelope) -> None:
        await retry_transient(
            lambda: publisher.publish(event, key=event.case_id.encode(), headers={"event-type": event.event_type}),
            service=self.name,
            backoff=self.backoff,
        )

    async def retrying(self, operation: Callable[[], Awaitable[Any]]) -> Any:
        return await retry_transient(operation, service=self.name, backoff=self.backoff)

    async def process(self, message: KafkaMessage, work: Work) -> None:
        """Run `work` on one message; retry transient failures, dead-letter the event on any other."""
        record = message.raw_message
        assert not isinstance(record, tuple)
        source = Source(record.topic, record.partition, record.offset)
        started = time.perf_counter()
        try:
            await self.retrying(lambda: work(message.body))
        except Rejected as exc:
            await self.dead_letter(source, message.body, exc.reason, exc.detail)
        except Exception as exc:  # an unforeseen failure must not stall the partition behind it
            log.exception("unexpected failure, dead-lettering", extra={"topic": source.topic})
            await self.dead_letter(source, message.body, "unexpected_error", f"{type(exc).__name__}: {exc}")
        finally:
            STAGE_SECONDS.labels(self.name).observe(time.perf_counter() - started)

    async def dead_letter(self, source: Source, body: bytes, reason: str, detail: str) -> None:
        letter = DeadLetter(self.name, source, reason, detail, utcnow(), body)
        log.warning("dead-lettered: %s", detail[:300], extra={"reason": reason, "topic": source.topic})
        # The broker may refuse an enormous record; the store keeps the reason either way.
        payload = body if len(body) <= 512 * 1024 else body[: 512 * 1024]
        await self.retrying(lambda: self.dead_letters.publish(payload, headers=letter.headers()))
        await self.retrying(lambda: self.store.record_dead_letter(source.id, letter.record()))
        DEAD_LETTERS.labels(self.name, reason).inc()

    def app(
        self,
        *,
        on_startup: Sequence[Callable[[], Awaitable[None]]] = (),
        on_shutdown: Sequence[Callable[[], Awaitable[None]]] = (),
        routes: Sequence[tuple[str, ASGIApp]] = (),
    ) -> AsgiFastStream:
        @get(include_in_schema=False)
        async def health(scope: Scope) -> AsgiResponse:
            broker_ok = await self.broker.ping(timeout=2.0)
            store_ok = await self.store.ping()
            ok = broker_ok and store_ok
            body = {"service": self.name, "status": "ok" if ok else "degraded",
                    "broker": broker_ok, "store": store_ok}
            return JSONResponse(body, 200 if ok else 503)

        async def prepare_store() -> None:
            await self.retrying(self.store.ensure_indexes)

        return AsgiFastStream(
            self.broker,
            asgi_routes=[("/health", health), ("/metrics", make_asgi_app(registry=REGISTRY)), *routes],
            on_startup=[prepare_store, *on_startup],
            on_shutdown=[*on_shutdown, self.store.close],
            asyncapi_path="/docs/asyncapi",
        )
