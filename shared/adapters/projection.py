"""The desks' queue follows the cases: every case save files the case's entry in its unit's queue, and takes
it out of the queues it left. Both adapters' `save` call `project`, after the case is written and also when a
change changed nothing (a redelivery), so a crash between the two writes is repaired when the event comes
again."""

from __future__ import annotations

import asyncio

from shared.domain.case import Case
from shared.domain.queue import entry_of
from shared.domain.triage import Unit
from shared.ports import DeskQueue


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
