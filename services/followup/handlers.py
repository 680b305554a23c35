"""Follow-up: open the legal time limits of a routed case and keep them as durable timers."""

from __future__ import annotations

from datetime import datetime

from shared.domain.deadlines import Deadline, local_date
from shared.domain.followup import deadlines_on_routing, timers_for
from shared.events import CaseRouted
from shared.handling import parse_event
from shared.metrics import DEADLINES_OPENED
from shared.store import CaseStore


async def open_deadlines(store: CaseStore, case_id: str, deadlines: list[Deadline], now: datetime) -> None:
    for d in deadlines:
        fresh = await store.open_deadline(case_id, {
            "rule": d.rule, "start": d.start.isoformat(), "due": d.due.isoformat(), "source": d.source,
            "opened_at": now,
        })
        for timer in timers_for(d):
            await store.schedule_timer(case_id, timer.rule, timer.kind.value, timer.due_at)
        await store.record(case_id, f"deadline:{d.rule}", now, "deadline_opened", rule=d.rule,
                           due=d.due.isoformat(), source=d.source)
        if fresh:
            DEADLINES_OPENED.labels(d.rule).inc()


async def on_routed(body: bytes, *, store: CaseStore, max_bytes: int, now: datetime) -> None:
    routed = parse_event(body, CaseRouted, max_bytes=max_bytes)
    p = routed.payload
    deadlines = deadlines_on_routing(p.unit, p.category, routed.source_channel.value, local_date(now))
    await open_deadlines(store, routed.case_id, deadlines, now)
