"""Intake service: `faststream run services.intake.main:app`."""

from faststream.kafka.annotations import KafkaMessage

from services.intake import handlers
from shared import topics
from shared.events import CaseReceived, utcnow
from shared.runtime import Record, Service

service = Service("intake")
received = service.publisher(topics.CASE_RECEIVED, CaseReceived, "A complaint became a case (or joined one).")


async def emit(event: CaseReceived) -> None:
    await service.publish(received, event)


def order_keys(record: Record) -> list[str]:
    return handlers.order_keys(record.value or b"", service.settings)


async def work(body: bytes) -> None:
    await handlers.take_in(body, store=service.store, emit=emit, settings=service.settings, now=utcnow())


@service.subscriber(topics.CHANNEL_EVENTS, title="channel-events",
                    description="Raw complaints from the 12345, 110 and 12348 hotlines, letters, walk-ins, "
                    "the online portal and grid workers (schema: `triage schema`).")
async def on_channel_event(message: KafkaMessage) -> None:
    await service.process(message, work, order_keys)


app = service.app()
