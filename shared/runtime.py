"""What every service is made of: a Kafka broker with Prometheus middleware, its storage, a
dead-letter publisher, and an ASGI app serving /health, /metrics and the AsyncAPI document."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import Any, TypeAlias

from aiokafka import ConsumerRecord, TopicPartition
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.response import JSONResponse
from faststream.asgi.types import ASGIApp, Scope
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.kafka.publisher.usecase import DefaultPublisher
from faststream.kafka.subscriber.usecase import BatchSubscriber
from faststream.message import StreamMessage
from prometheus_client import make_asgi_app

from shared import topics
from shared.adapters.mongo import MongoStorage
from shared.config import Settings, bootstrap_servers, get_settings, refuse_unsafe
from shared.events import Envelope, utcnow
from shared.handling import Backoff, DeadLetter, Rejected, Source, chains, retry_transient
from shared.logging import configure_logging
from shared.metrics import BATCH_RECORDS, CONSUMER_LAG, DEAD_LETTERS, REGISTRY, STAGE_SECONDS

log = logging.getLogger(__name__)

Work = Callable[[bytes], Awaitable[None]]
Record: TypeAlias = "ConsumerRecord[bytes, bytes]"
RecordWork = Callable[[Record], Awaitable[None]]  # work that needs the record's headers too
OrderKeys = Callable[[Record], Iterable[Hashable]]


async def _undecoded(message: StreamMessage[Any]) -> Any:
    return message.body


def _readable(value: bytes | None) -> bool:
    if value is None:  # Kafka allows a header without a value
        return False
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _readable_headers(record: Record) -> Record:
    """FastStream decodes every header value as UTF-8 before a handler runs, and a parser that fails loses
    its batch (nothing is nacked). A value that is missing or not UTF-8 is replaced (U+FFFD), so the
    record reaches the handler like any other."""
    if all(_readable(value) for _key, value in record.headers):
        return record
    return dataclasses.replace(record, headers=[(key, (value or b"").decode("utf-8", "replace").encode())
                                                for key, value in record.headers])


async def _tolerant_parser(records: tuple[Record, ...], parse: Callable[..., Awaitable[Any]]) -> Any:
    return await parse(tuple(_readable_headers(r) for r in records))


class ConsumerLag:
    """A service's consumer lag per partition, exported as `triage_consumer_lag`.

    Measured at each batch, from what the consumer already knows (no request to the broker): the partition's
    highwater from the last fetch response, minus the position after the batch's last record (what aiokafka's
    `position()` returns once the batch is handed over). A partition the consumer no longer holds (after a
    rebalance) is forgotten here, so its new owner's figure is the only one. A consumer that stops taking
    batches stops updating its figures: the broker's view (kafka_exporter) tells that case apart."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.exported: set[tuple[str, int]] = set()

    def observe(self, consumer: object, records: Sequence[Record]) -> None:
        highwater = getattr(consumer, "highwater", None)
        if highwater is None:  # not aiokafka's consumer: the in-memory test broker
            return
        # The assignment may change while a batch is handled (the group rebalances in the background).
        held = {(tp.topic, tp.partition) for tp in consumer.assignment()}  # type: ignore[attr-defined]
        ends: dict[tuple[str, int], int] = {}
        for record in records:
            at = (record.topic, record.partition)
            ends[at] = max(ends.get(at, 0), record.offset + 1)
        for (topic, partition), end in ends.items():
            high = highwater(TopicPartition(topic, partition)) if (topic, partition) in held else None
            if high is not None:
                CONSUMER_LAG.labels(self.service, topic, str(partition)).set(max(high - end, 0))
                self.exported.add((topic, partition))
        read = {topic for topic, _partition in ends}
        for topic, partition in sorted(self.exported - held):
            if topic in read:  # this consumer's topic, and it no longer holds the partition
                CONSUMER_LAG.remove(self.service, topic, str(partition))
                self.exported.discard((topic, partition))


def by_record_key(record: Record) -> Iterable[Hashable]:
    """Events of one case carry its id as their key; an unkeyed record keeps its partition's order."""
    return [record.key if record.key is not None else (record.topic, record.partition)]


class Service:
    """One deployable service. Handlers get its storage and publishers; it owns the plumbing."""

    def __init__(self, name: str, settings: Settings | None = None, *, personal_data: bool = False) -> None:
        """`personal_data`: the service stores the complainant (intake), so it holds the master key to encrypt."""
        self.name = name
        self.settings = settings or get_settings()
        configure_logging(name, self.settings.log_level)
        # before anything connects: a refusal happens at start-up
        refuse_unsafe(self.settings, name, personal_data=personal_data)
        self.broker = KafkaBroker(
            bootstrap_servers(self.settings.kafka_bootstrap_servers),
            client_id=f"triage-{name}",
            middlewares=[KafkaPrometheusMiddleware(registry=REGISTRY, app_name=name)],
            # Wait for the whole in-sync replica set: an acknowledged publish survives a broker restart.
            # No idempotent producer: consumers are idempotent anyway, and a broker that restarts without
            # its producer state leaves an idempotent producer retrying an out-of-order sequence forever.
            acks="all",
            # FastStream would create each subscribed topic itself with one partition and one replica; the
            # broker's auto-creation applies its defaults (num.partitions, a cluster's replication factor 3).
            allow_auto_create_topics=False,
            # FastStream logs every message received and processed; at INFO that is two lines per event.
            log_level=logging.DEBUG,
        )
        self.storage = MongoStorage.from_settings(self.settings, name, personal_data=personal_data)
        self.backoff = Backoff(self.settings.retry_initial_seconds, self.settings.retry_max_seconds)
        self.slots = asyncio.Semaphore(self.settings.batch_concurrency)
        self.lag = ConsumerLag(name)
        self.dead_letters = self.broker.publisher(
            topics.DEAD_LETTER,
            title="dead-letter",
            description="Events that could not be processed; the reason is in the x-dlq-* headers.",
        )

    @property
    def group_id(self) -> str:
        return f"{self.settings.consumer_group_prefix}.{self.name}"

    def subscriber(self, topic: str, *, title: str, description: str | None = None) -> BatchSubscriber:
        """A batch consumer in this service's group that commits offsets only after the batch's work is done
        (see `process`).

        Bodies reach the handler undecoded: FastStream would otherwise parse JSON itself, before the
        handler can dead-letter what does not parse, and a nack would replay the poison message forever."""
        return self.broker.subscriber(
            topic,
            group_id=self.group_id,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            batch=True,
            max_records=self.settings.batch_max_records,
            batch_timeout_ms=100,
            parser=_tolerant_parser,
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

    async def process(self, message: KafkaMessage, work: Work, order_keys: OrderKeys = by_record_key) -> None:
        """Run `work` on the value of every record of a batch (see `process_records`)."""

        async def on_value(record: Record) -> None:
            await work(record.value or b"")

        await self.process_records(message, on_value, order_keys)

    async def process_records(self, message: KafkaMessage, work: RecordWork,
                              order_keys: OrderKeys = by_record_key) -> None:
        """Run `work` on every record of a batch (its value and its headers, already made readable).
        Records sharing an order key (a case id) run one after another in their order; other cases run side
        by side, up to `batch_concurrency` at once. This returns, and FastStream commits the batch's offsets,
        only when every record is done: processed, or dead-lettered with its reason. A crash before that
        redelivers the batch, and every effect is idempotent, so each case is still acknowledged once done and
        never before."""
        raw = message.raw_message
        records: tuple[Record, ...] = raw if isinstance(raw, tuple) else (raw,)
        BATCH_RECORDS.labels(self.name).observe(len(records))
        self.lag.observe(getattr(message, "consumer", None), records)

        async def run(chain: list[Record]) -> None:
            async with self.slots:
                for record in chain:
                    await self.process_record(record, work)

        # Every chain finishes before this returns or raises: a batch nacked for redelivery must not still
        # be running here, or one case would be processed twice at once.
        outcomes = await asyncio.gather(*(run(chain) for chain in chains(records, order_keys)),
                                        return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def process_record(self, record: Record, work: RecordWork) -> None:
        """Run `work` on one record; retry transient failures, dead-letter the event on any other."""
        source = Source(record.topic, record.partition, record.offset)
        body = record.value or b""
        started = time.perf_counter()
        try:
            await self.retrying(lambda: work(record))
        except Rejected as exc:
            await self.dead_letter(source, body, exc.reason, exc.detail)
        except Exception as exc:  # an unforeseen failure must not stall the partition behind it
            log.exception("unexpected failure, dead-lettering", extra={"topic": source.topic})
            await self.dead_letter(source, body, "unexpected_error", f"{type(exc).__name__}: {exc}")
        finally:
            STAGE_SECONDS.labels(self.name).observe(time.perf_counter() - started)

    async def dead_letter(self, source: Source, body: bytes, reason: str, detail: str) -> None:
        letter = DeadLetter(self.name, source, reason, detail, utcnow(), body)
        log.warning("dead-lettered: %s", detail[:300], extra={"reason": reason, "topic": source.topic})
        # The broker may refuse an enormous record; the store keeps the reason either way.
        payload = body if len(body) <= 512 * 1024 else body[: 512 * 1024]
        await self.retrying(lambda: self.dead_letters.publish(payload, headers=letter.headers()))
        await self.retrying(lambda: self.storage.dead_letters.record(source.id, letter.record()))
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
            store_ok = await self.storage.ping()
            ok = broker_ok and store_ok
            body = {"service": self.name, "status": "ok" if ok else "degraded",
                    "broker": broker_ok, "store": store_ok}
            return JSONResponse(body, 200 if ok else 503)

        async def prepare_store() -> None:
            await self.retrying(self.storage.prepare)

        return AsgiFastStream(
            self.broker,
            asgi_routes=[("/health", health), ("/metrics", make_asgi_app(registry=REGISTRY)), *routes],
            on_startup=[prepare_store, *on_startup],
            on_shutdown=[*on_shutdown, self.storage.close],
            asyncapi_path="/docs/asyncapi",
        )
