"""Classification service: `faststream run services.classification.main:app`."""

import logging

from faststream.kafka.annotations import KafkaMessage

from services.classification import handlers
from services.classification.batching import AssessmentBatcher
from shared import topics
from shared.domain.classification import Classifier, ModelError
from shared.events import CaseClassified
from shared.runtime import Service

log = logging.getLogger(__name__)
service = Service("classification")
classified = service.publisher(topics.CASE_CLASSIFIED, CaseClassified,
                               "Category, urgency, risk flags and the reasons for them.")
try:
    classifier = Classifier.load(service.settings.model_dir)
except ModelError as exc:  # without its model this service cannot classify anything: do not start
    log.critical("%s", exc)
    raise SystemExit(f"classification: {exc}") from None
assessments = AssessmentBatcher(classifier)


async def emit(event: CaseClassified) -> None:
    await service.publish(classified, event)


async def work(body: bytes) -> None:
    await handlers.classify(body, emit=emit, assess=assessments.assess, max_bytes=service.settings.max_event_bytes)


@service.subscriber(topics.CASE_RECEIVED, title="case-received")
async def on_case_received(message: KafkaMessage) -> None:
    await service.process(message, work)


app = service.app()
