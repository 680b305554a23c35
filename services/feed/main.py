"""The status feed: `faststream run services.feed.main:app`. Every case's milestones on
`triage.case-updates.v1`, once each (relay.py says how), for the upstream systems the complaints came from."""

from __future__ import annotations

import asyncio
import contextlib

from services.feed.relay import FeedRelay
from shared import topics
from shared.events import CaseUpdated
from shared.runtime import Service

service = Service("feed")
# Any number of instances: each relays the partition groups it is assigned, each group with a transactional
# producer of its own (`<group id>.relay.<k>`), which fences the group's former holder (relay.py says how).
relay = FeedRelay(service.settings.kafka_bootstrap_servers, service.group_id, service.storage,
                  cloudevents=service.settings.feed_cloudevents)
# Declared for the AsyncAPI document (/docs/asyncapi): the relay writes the topic itself, in transactions.
service.publisher(topics.CASE_UPDATES, CaseUpdated, "Every milestone of a case, once, keyed by the upstream "
                  "channel (received, routed, accepted, handed back, extended, resolved with the answer, return "
                  "visit, closed, reopened, escalated); no personal data. FEED_CLOUDEVENTS=true: as CloudEvents.")
_running: asyncio.Task[None] | None = None


async def start_relay() -> None:
    global _running
    await service.retrying(relay.start)
    _running = asyncio.create_task(relay.run(), name="feed-relay")


async def stop_relay() -> None:
    if _running is not None:
        _running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await _running
    await relay.stop()


app = service.app(on_startup=[start_relay], on_shutdown=[stop_relay])
