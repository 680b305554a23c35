"""Every case save keeps the desks' queues in step (through the memory adapter, whose contract the MongoDB one
shares): routed in, moved out, closed out, an older copy never wins, a replay repairs what a crash left."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.adapters.memory import MemoryDeskQueue, MemoryStorage
from shared.adapters.projection import units_before
from shared.domain.case import Case
from shared.domain.change import Change
from shared.domain.lifecycle import CaseStatus
from shared.domain.queue import entry_of
from shared.domain.triage import Unit, Urgency

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
S = CaseStatus


async def filed(queue: MemoryDeskQueue, unit: Unit) -> dict[str, int]:
    return {e.case_id: e.version for e in await queue.entries(unit)}


async def new_case(storage: MemoryStorage, case_id: str = "GT-1") -> Case:
    case = Case(id=case_id, channel="12345", text="邻居噪音", received_at=T0, status=S.CLASSIFIED,
                urgency=Urgency.NORMAL)
    assert await storage.cases.add(case, Change())
    return case


async def step(storage: MemoryStorage, case: Case, **values: Any) -> None:
    """A step that sets these fields, saved as a handler saves it."""
    for name, value in values.items():
        setattr(case, name, value)
    await storage.cases.save(case, Change(fields=set(values)))


async def test_a_case_without_a_unit_is_in_no_queue() -> None:
    storage = MemoryStorage()
    case = await new_case(storage)
    await step(storage, case, urgency=Urgency.HIGH)
    assert storage.desk_queue.filed == {}


async def test_a_routed_case_is_in_its_units_queue_at_its_version() -> None:
    storage = MemoryStorage()
    case = await new_case(storage)
    await step(storage, case, status=S.ROUTED, unit=Unit.MEDIATION)
    assert await filed(storage.desk_queue, Unit.MEDIATION) == {"GT-1": 1}
    await step(storage, case, status=S.ACCEPTED)
    [entry] = await storage.desk_queue.entries(Unit.MEDIATION)
    assert (entry.version, entry.status) == (2, S.ACCEPTED)


async def test_a_handed_back_and_rerouted_case_leaves_the_old_unit() -> None:
    storage = MemoryStorage()
    case = await new_case(storage)
    await step(storage, case, status=S.ROUTED, unit=Unit.MEDIATION)
    await step(storage, case, status=S.RETURNED, excluded_units=[Unit.MEDIATION])  # the unit's until re-routed
    assert (await storage.desk_queue.entries(Unit.MEDIATION))[0].status is S.RETURNED
    await step(storage, case, status=S.ROUTED, unit=Unit.POLICE)
    assert await filed(storage.desk_queue, Unit.MEDIATION) == {}
    assert await filed(storage.desk_queue, Unit.POLICE) == {"GT-1": 3}


async def test_an_escalated_case_moves_to_the_command_centre() -> None:
    storage = MemoryStorage()
    case = await new_case(storage)
    await step(storage, case, status=S.ROUTED, unit=Unit.VISITOR)
    await step(storage, case, status=S.ESCALATED, unit=Unit.COMMAND, escalated_from=Unit.VISITOR)
    assert await filed(storage.desk_queue, Unit.VISITOR) == {}
    assert await filed(storage.desk_queue, Unit.COMMAND) == {"GT-1": 2}


async def test_a_closed_case_leaves_every_queue() -> None:
    storage = MemoryStorage()
    case = await new_case(storage)
    await step(storage, case, status=S.ROUTED, unit=Unit.MEDIATION)
    await step(storage, case, status=S.CLOSED)
    assert storage.desk_queue.filed == {Unit.MEDIATION: {}}


def test_a_case_can_have_been_only_with_the_units_it_left() -> None:
    case = Case(id="GT-1", channel="12345", text="t", received_at=T0, unit=Unit.COMMAND,
                excluded_units=[Unit.MEDIATION], escalated_from=Unit.POLICE)
    assert units_before(case) == {Unit.COMMAND, Unit.MEDIATION, Unit.POLICE}


async def test_an_older_version_never_overwrites_a_newer_one() -> None:
    queue = MemoryDeskQueue()
    case = Case(id="GT-1", channel="12345", text="t", received_at=T0, status=S.ROUTED, unit=Unit.LEGAL, version=5)
    newer = entry_of(case)
    older = entry_of(case.model_copy(update={"version": 4, "status": S.ACCEPTED}))
    assert newer is not None and older is not None
    await queue.put(newer)
    await queue.put(older)
    assert (await queue.entries(Unit.LEGAL)) == [newer]


async def test_a_remove_at_an_older_version_leaves_a_newer_entry() -> None:
    queue = MemoryDeskQueue()
    entry = entry_of(Case(id="GT-1", channel="12345", text="t", received_at=T0, status=S.ROUTED, unit=Unit.LEGAL,
                          version=5))
    assert entry is not None
    await queue.put(entry)
    await queue.remove("GT-1", Unit.LEGAL, 5)
    assert await queue.entries(Unit.LEGAL) == [entry]
    await queue.remove("GT-1", Unit.LEGAL, 6)
    assert await queue.entries(Unit.LEGAL) == []


async def test_a_replay_files_an_entry_a_crash_left_out() -> None:
    storage = MemoryStorage()
    case = await new_case(storage)
    await step(storage, case, status=S.ROUTED, unit=Unit.MEDIATION)
    storage.desk_queue.filed.clear()  # the case was written, then the process died before the queue was
    replayed = await storage.cases.get("GT-1")
    assert replayed is not None
    await storage.cases.save(replayed, Change())  # the redelivered event changes nothing
    assert await filed(storage.desk_queue, Unit.MEDIATION) == {"GT-1": 1}


async def test_a_replay_takes_the_case_out_of_the_unit_it_left() -> None:
    storage = MemoryStorage()
    case = await new_case(storage)
    await step(storage, case, status=S.ROUTED, unit=Unit.MEDIATION)
    stale = await storage.desk_queue.entries(Unit.MEDIATION)
    await step(storage, case, status=S.ROUTED, unit=Unit.POLICE, excluded_units=[Unit.MEDIATION])
    storage.desk_queue.filed = {Unit.MEDIATION: {"GT-1": stale[0]}}  # the move's queue writes were lost
    replayed = await storage.cases.get("GT-1")
    assert replayed is not None
    await storage.cases.save(replayed, Change())
    assert await filed(storage.desk_queue, Unit.MEDIATION) == {}
    assert await filed(storage.desk_queue, Unit.POLICE) == {"GT-1": 2}
