"""What every case save keeps in step with the case: the desks' queue, and the facts the supervisors' figures
are counted from. Both adapters' `save` call `Projection.saved`, after the case is written and also when a
change changed nothing (a redelivery), so a crash between the writes is repaired when the event comes again:
the queue is filed again at the case's version, and the facts are read again from the whole timeline (only
then is it read; the first of each fact stands)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from shared.domain.case import Case
from shared.domain.change import Change, TimelineEntry
from shared.domain.facts import facts_of_case, facts_of_change
from shared.domain.queue import entry_of
from shared.domain.triage import Unit
from shared.domain.workdays import Calendar, default_calendar
from shared.ports import DeskQueue, FigureBook


class Projection:
    def __init__(self, queue: DeskQueue, figures: FigureBook, calendar: Calendar | None = None) -> None:
        self.queue = queue
        self.figures = figures
        self.calendar = calendar or default_calendar()

    async def saved(self, case: Case, change: Change,
                    timeline: Callable[[], Awaitable[list[TimelineEntry]]]) -> None:
        if change.changed:
            facts = facts_of_change(case, change.entries, self.calendar)
        else:  # a replay: what the first delivery added is not known here
            facts = facts_of_case(case, await timeline(), self.calendar)
        await asyncio.gather(project(self.queue, case, moved_by(change.changed, change.fields)),
                             self.figures.add(facts))


async def project(queue: DeskQueue, case: Case, moved: bool) -> None:
    """Bring the queues in step with the case as saved (at `case.version`). `moved`: the unit may have
    changed, so the queues of the units it was with before are cleared of it too (a replay cannot tell, so
    it says so)."""
    if case.unit is None:
        return  # never routed: in no queue, and never was
    entry = entry_of(case)
    writes = [queue.put(entry)] if entry is not None else []
    if entry is None or moved:  # closed: out of every queue it was in; moved: out of all but its own
        writes += [queue.remove(case.id, unit, case.version) for unit in units_before(case)
                   if entry is None or unit is not entry.unit]
    await asyncio.gather(*writes)


def units_before(case: Case) -> set[Unit]:
    """Every unit whose queue the case can have been in: a case changes unit only when a unit hands it back
    (excluded from it since) or when it is escalated to the command centre (from the one it was with)."""
    assert case.unit is not None
    return {case.unit, *case.excluded_units, *([case.escalated_from] if case.escalated_from else [])}


def moved_by(changed: bool, fields: set[str]) -> bool:
    """Whether a save may have moved the case to another unit: it set the unit, or it is a replay (which
    does not know what the first delivery set)."""
    return not changed or "unit" in fields
