"""Follow-up service: `faststream run services.followup.main:app`.

Consumes routed cases and desk actions, and scans the store for due timers in the background."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from datetime import datetime, timedelta

from faststream.kafka.annotations import KafkaMessage

from services.followup import handlers, timers
from shared import topics
from shared.domain.triage import Unit
from shared.domain.workdays import load_calendar
from shared.events import CaseAlert, CaseClassified, CaseRouted, Envelope, utcnow
from shared.metrics import CALENDAR_UNKNOWN_YEAR, TIMER_SCAN_LAST_SUCCESS
from shared.runtime import Service

log = logging.getLogger(__name__)

service = Service("followup")
alerts = service.publisher(topics.CASE_ALERTS, CaseAlert, "Reminders, overdue notices and escalations.")
reclassified = service.publisher(topics.CASE_CLASSIFIED, CaseClassified,
                                 "A case handed back by a desk, to be routed again without that unit.")
desks = {u: service.publisher(topics.desk_topic(u), CaseRouted, f"The {u.value} desk's queue.") for u in Unit}


async def publish(event: Envelope) -> None:
    match event:
        case CaseAlert():
            await service.publish(alerts, event)
        case CaseClassified():
            await service.publish(reclassified, event)
        case CaseRouted():
            await service.publish(desks[event.payload.unit], event)
        case _:
            raise TypeError(f"follow-up does not publish {event.event_type}")


deps = handlers.FollowUp(
    storage=service.storage, publish=publish, max_bytes=service.settings.max_event_bytes,
    calendar=load_calendar(on_unknown_year=lambda year: CALENDAR_UNKNOWN_YEAR.labels(str(year)).inc()),
)
owner = f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"


async def now() -> datetime:
    """The follow-up's clock: real time, shifted by the stored offset when a simulation asks for it."""
    if not service.settings.simulated_clock:
        return utcnow()
    return utcnow() + timedelta(seconds=await service.storage.clock.offset_seconds())


async def on_routed_work(body: bytes) -> None:
    await handlers.on_routed(body, deps, await now())


async def on_action_work(body: bytes) -> None:
    await handlers.on_desk_action(body, deps, await now())


@service.subscriber(topics.CASE_ROUTED, title="case-routed")
async def on_case_routed(message: KafkaMessage) -> None:
    await service.process(message, on_routed_work)


@service.subscriber(topics.DESK_ACTIONS, title="desk-actions",
                    description="Accept, note, hand back, extend, agree, resolve, return visit, escalate.")
async def on_desk_action(message: KafkaMessage) -> None:
    await service.process(message, on_action_work)


_scanner: asyncio.Task[None] | None = None


async def scan_timers_forever() -> None:
    while True:
        try:
            await service.retrying(_scan_once)
            # Real time, even under a simulated clock: an alert compares it with Prometheus' own time.
            TIMER_SCAN_LAST_SUCCESS.set_to_current_time()
        except Exception:  # a bad timer must not stop the others from firing
            log.exception("timer scan failed")
        await asyncio.sleep(service.settings.timer_scan_seconds)


async def _scan_once() -> int:
    return await timers.fire_due_timers(deps, await now(), utcnow(), owner, service.settings.timer_lease_seconds)


async def start_scanner() -> None:
    global _scanner
    # Until the first scan finishes, the stamp is the start: a scanner that never finishes one is stalled too.
    TIMER_SCAN_LAST_SUCCESS.set_to_current_time()
    _scanner = asyncio.create_task(scan_timers_forever(), name="timer-scanner")


async def stop_scanner() -> None:
    if _scanner is not None:
        _scanner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await _scanner


app = service.app(on_startup=[start_scanner], on_shutdown=[stop_scanner])
