"""Intake service: `faststream run services.intake.main:app`."""

import logging
from collections.abc import Hashable, Sequence
from functools import cache

from faststream.kafka.annotations import KafkaMessage

from services.intake import handlers
from shared import topics
from shared.domain.classification import Classifier, ModelError, load_policy
from shared.domain.classification.complaints import topics_of
from shared.domain.matters import TopicsOf
from shared.events import CaseReceived, Envelope, utcnow
from shared.runtime import Record, Service

log = logging.getLogger(__name__)
service = Service("intake", personal_data=True)  # it stores the complainant, encrypted
received = service.publisher(topics.CASE_RECEIVED, CaseReceived, "A complaint became a case (or joined one).")


async def emit(event: Envelope) -> None:
    await service.publish(received, event)


@cache
def _topics() -> TopicsOf | None:
    try:
        return topics_of(Classifier.load(service.settings.model_dir), load_policy())
    except (ModelError, OSError, ValueError) as exc:  # no model here: split by the markers alone
        log.warning("matters are split by their markers alone, without the classifier: %s", exc)
        return None


def matter_topics(parts: Sequence[str]) -> Sequence[Hashable]:
    """What each part of a complaint that may hold several matters is about. The classifier is loaded on
    the first such complaint: most complaints hold one matter and never need it here."""
    topics = _topics()
    return topics(parts) if topics is not None else list(range(len(parts)))


def order_keys(record: Record) -> list[str]:
    return handlers.order_keys(record.value or b"", service.settings, record.headers)


deps = handlers.Intake(storage=service.storage, emit=emit, settings=service.settings, topics=matter_topics)


async def work(record: Record) -> None:
    """A record's value and headers: a channel event may come as a CloudEvent (binary mode puts its
    attributes in the headers)."""
    await handlers.take_in(record.value or b"", deps, utcnow(), record.headers)


@service.subscriber(topics.CHANNEL_EVENTS, title="channel-events",
                    description="Raw complaints from the 12345, 110 and 12348 hotlines, letters, walk-ins, "
                    "the online portal and grid workers (schema: `triage schema`), as plain JSON or as CloudEvents "
                    "1.0 (binary or structured mode, type cn.gov.district.grievance.complaint.v1).")
async def on_channel_event(message: KafkaMessage) -> None:
    await service.process_records(message, work, order_keys)


app = service.app()
