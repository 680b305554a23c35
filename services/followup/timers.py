"""The follow-up's timer scan: fire every timer that has fallen due, in as many instances as run."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from services.followup.handlers import FollowUp, save
from shared.domain.followup import TimerSpec
from shared.domain.workdays import local_date
from shared.metrics import TIMERS_FIRED


async def fire_due_timers(deps: FollowUp, now: datetime, real_now: datetime, owner: str, lease: float) -> int:
    """Fire every timer due by `now`; returns how many fired. Safe to run in several instances at once:
    a timer is claimed before it fires, and a claim held by a dead instance runs out with its lease.

    Timers are filed by the day they fall due; a cursor remembers the earliest day with unfinished ones."""
    timers = deps.storage.timers
    cursor = await timers.cursor()
    if cursor is None:
        return 0
    today, day, fired, movable = local_date(now), date.fromisoformat(cursor), 0, True
    while day <= today:
        key, unfinished = day.isoformat(), False
        for timer in await timers.unfinished_on(key):
            if timer.due_at > now or not await timers.claim(timer, owner, real_now,
                                                            real_now + timedelta(seconds=lease)):
                unfinished = True  # due later today, or held by an instance whose lease still runs
                continue
            if not await timers.is_finished(timer, key):  # another instance may have finished it meanwhile
                outcome = await fire(deps, timer, now)
                TIMERS_FIRED.labels(f"{timer.kind.value}:{outcome}").inc()
                fired += outcome == "fired"
            await timers.finish(timer, key)
        # Timers are filed under the filer's today or later, never an earlier day. The cursor leaves a day
        # only once the next one has passed too, so a timer filed late on a day is there to be found.
        movable = movable and not unfinished and day < today - timedelta(days=1)
        if movable:
            await timers.move_cursor(key, (day + timedelta(days=1)).isoformat())
        day += timedelta(days=1)
    return fired


async def fire(deps: FollowUp, timer: TimerSpec, now: datetime) -> str:
    case = await deps.storage.cases.get(timer.case_id)
    change = case.fire(timer, now) if case else None
    if case is None or change is None:
        return "skipped"  # the step was done, or the deadline was extended: this timer no longer applies
    await save(deps, case, change, now)
    return "fired"
