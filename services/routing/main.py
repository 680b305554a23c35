"""Routing service: `faststream run services.routing.main:app`."""

from faststream.kafka.annotations import KafkaMessage

from services.routing import handlers
from shared import topics
from shared.domain.routing import load_policy
from shared.domain.triage import Unit
from shared.domain.workdays import load_calendar
from shared.events import CaseAlert, CaseRouted, Envelope, utcnow
from shared.metrics import CALENDAR_UNKNOWN_YEAR
from shared.runtime import Service

service = Service("routing")
routed = service.publisher(topics.CASE_ROUTED, CaseRouted, "Every routing decision, for follow-up and audit.")
desks = {
    unit: service.publisher(topics.desk_topic(unit), CaseRouted, f"The queue of the {unit.value} desk.")
    for unit in Unit
}
alerts = service.publisher(topics.CASE_ALERTS, CaseAlert,
                           "A critical case routed to a unit that cannot act at once: the command centre is told.")
policy = load_policy()
calendar = load_calendar(on_unknown_year=lambda year: CALENDAR_UNKNOWN_YEAR.labels(str(year)).inc())


async def publish(event: Envelope) -> None:
    match event:
        case CaseRouted():
            # The desk's queue first: the routed event is what follow-up counts as "delivered".
            await service.publish(desks[event.payload.unit], event)
            await service.publish(routed, event)
        case CaseAlert():
            await service.publish(alerts, event)
        case _:
            raise TypeError(f"routing does not publish {event.event_type}")


async def work(body: bytes) -> None:
    await handlers.route_case(body, cases=service.storage.cases, publish=publish, policy=policy, calendar=calendar,
                              max_bytes=service.settings.max_event_bytes, now=utcnow())


@service.subscriber(topics.CASE_CLASSIFIED, title="case-classified")
async def on_case_classified(message: KafkaMessage) -> None:
    await service.process(message, work)


app = service.app()
