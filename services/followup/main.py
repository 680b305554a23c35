"""Follow-up service: `faststream run services.followup.main:app`."""

from faststream.kafka.annotations import KafkaMessage

from services.followup import handlers
from shared import topics
from shared.events import utcnow
from shared.runtime import Service

service = Service("followup")


async def work(body: bytes) -> None:
    await handlers.on_routed(body, store=service.store, max_bytes=service.settings.max_event_bytes,
                             now=utcnow())


@service.subscriber(topics.CASE_ROUTED, title="case-routed")
async def on_case_routed(message: KafkaMessage) -> None:
    await service.process(message, work)


app = service.app()
