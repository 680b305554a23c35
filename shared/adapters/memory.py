"""Every port in memory, for unit tests of the services' handlers: the same contracts as the MongoDB
adapter (ids decide, a case saves only from the version it was loaded at), none of its measures."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from shared.adapters.projection import Projection
from shared.domain.case import Case
from shared.domain.change import Change, TimelineEntry
from shared.domain.facts import Fact
from shared.domain.figures import Tally, month_of
from shared.domain.followup import TimerSpec
from shared.domain.lifecycle import OPEN_STATUSES
from shared.domain.queue import QueueEntry
from shared.domain.repeats import MAX_KEYED_CASES, CaseFingerprint, signature_of
from shared.domain.triage import Unit
from shared.handling import Contended
from shared.ports import Storage


class MemoryDeskQueue:
    """Each unit's queue: case id → entry, the newest version of each kept."""

    def __init__(self) -> None:
        self.filed: dict[Unit, dict[str, QueueEntry]] = {}

    async def entries(self, unit: Unit) -> list[QueueEntry]:
        return list(self.filed.get(unit, {}).values())

    async def put(self, entry: QueueEntry) -> None:
        queue = self.filed.setdefault(entry.unit, {})
        filed = queue.get(entry.case_id)
        if filed is None or filed.version < entry.version:
            queue[entry.case_id] = entry

    async def remove(self, case_id: str, unit: Unit, version: int) -> None:
        queue = self.filed.get(unit, {})
        filed = queue.get(case_id)
        if filed is not None and filed.version < version:
            del queue[case_id]


class MemoryFigures:
    """Facts by (unit, month), the first of each id kept."""

    def __init__(self) -> None:
        self.filed: dict[tuple[Unit | None, str], dict[str, Fact]] = {}

    async def add(self, facts: Sequence[Fact]) -> None:
        for fact in facts:
            self.filed.setdefault((fact.unit, month_of(fact.cohort)), {}).setdefault(fact.id, fact)

    async def tally(self, unit: Unit | None, month: str) -> Tally:
        return Tally.of(self.filed.get((unit, month), {}).values())


class MemoryCases:
    def __init__(self, queue: MemoryDeskQueue | None = None, figures: MemoryFigures | None = None) -> None:
        self.stored: dict[str, Case] = {}
        self.timelines: dict[str, list[TimelineEntry]] = {}
        self.queue = queue if queue is not None else MemoryDeskQueue()
        self.figures = figures if figures is not None else MemoryFigures()
        self.projection = Projection(self.queue, self.figures)

    async def get(self, case_id: str) -> Case | None:
        case = self.stored.get(case_id)
        return case.model_copy(deep=True) if case else None

    async def add(self, case: Case, change: Change) -> bool:
        if case.id in self.stored:
            return False
        self.stored[case.id] = case.model_copy(deep=True)
        self.timelines[case.id] = list(change.entries)
        return True

    async def save(self, case: Case, change: Change) -> None:
        if change.changed:
            current = self.stored[case.id]
            if current.version != case.version:
                raise Contended(f"case {case.id} moved past version {case.version}")
            case.version += 1
            self.stored[case.id] = case.model_copy(deep=True)
            self.timelines[case.id].extend(change.entries)
        await self.projection.saved(case, change, lambda: self.timeline(case.id))

    async def fingerprints(self, case_ids: Sequence[str]) -> list[CaseFingerprint]:
        return [CaseFingerprint(c.id, c.complainant_key, signature_of(c.text), c.received_at)
                for c in (self.stored.get(i) for i in case_ids) if c and c.status in OPEN_STATUSES]

    async def timeline(self, case_id: str) -> list[TimelineEntry]:
        return list(self.timelines.get(case_id, []))


class MemoryReceipts:
    def __init__(self) -> None:
        self.stored: dict[str, str] = {}

    async def claim(self, receipt: str, case_id: str, at: datetime) -> str:
        return self.stored.setdefault(receipt, case_id)

    async def case_of(self, receipt: str) -> str | None:
        return self.stored.get(receipt)


class MemoryRepeatIndex:
    def __init__(self) -> None:
        self.stored: dict[str, list[str]] = {}

    async def file_under(self, keys: Sequence[str], case_id: str) -> dict[str, list[str]]:
        before = {key: list(self.stored.get(key, [])) for key in keys}
        for key in keys:
            cases = self.stored.setdefault(key, [])
            if case_id not in cases:
                cases.append(case_id)
            del cases[:-MAX_KEYED_CASES]
        return before

    async def unfile(self, keys: Sequence[str], case_id: str) -> None:
        for key in keys:
            if case_id in self.stored.get(key, []):
                self.stored[key].remove(case_id)


class MemoryTimerBook:
    def __init__(self) -> None:
        self.filed: dict[str, dict[str, TimerSpec]] = {}  # day → timer id → timer
        self.done: set[str] = set()
        self.claims: dict[str, tuple[str, datetime]] = {}
        self.day: str | None = None

    async def schedule(self, timers: Sequence[TimerSpec], today: date) -> None:
        for t in timers:
            day = t.filed_on(today)
            self.filed.setdefault(day, {})[t.id] = t
            self.day = min(day, self.day or day)

    async def cursor(self) -> str | None:
        return self.day

    async def move_cursor(self, from_day: str, to_day: str) -> None:
        if self.day == from_day:
            self.day = to_day

    async def unfinished_on(self, day: str) -> list[TimerSpec]:
        return [t for tid, t in self.filed.get(day, {}).items() if tid not in self.done]

    async def claim(self, timer: TimerSpec, owner: str, now: datetime, lease_until: datetime) -> bool:
        holder, until = self.claims.get(timer.id, (owner, lease_until))
        if holder != owner and until > now:
            return False
        self.claims[timer.id] = (owner, lease_until)
        return True

    async def is_finished(self, timer: TimerSpec, day: str) -> bool:
        return timer.id in self.done

    async def finish(self, timer: TimerSpec, day: str) -> None:
        self.done.add(timer.id)
        self.claims.pop(timer.id, None)


class MemoryActionLog:
    """Action outcomes: the first record under an id is kept, and given back."""

    def __init__(self) -> None:
        self.stored: dict[str, Mapping[str, Any]] = {}

    async def record(self, action_id: str, record: Mapping[str, Any]) -> Mapping[str, Any]:
        return self.stored.setdefault(action_id, dict(record))

    async def get(self, action_id: str) -> Mapping[str, Any] | None:
        return self.stored.get(action_id)


class MemoryDeadLetters:
    def __init__(self) -> None:
        self.stored: dict[str, Mapping[str, Any]] = {}

    async def record(self, letter_id: str, record: Mapping[str, Any]) -> None:
        self.stored.setdefault(letter_id, dict(record))

    async def has(self, letter_id: str) -> bool:
        return letter_id in self.stored


class MemoryClock:
    def __init__(self) -> None:
        self.offset = 0.0

    async def offset_seconds(self) -> float:
        return self.offset

    async def set_offset_seconds(self, seconds: float) -> None:
        self.offset = seconds


class MemoryStorage:
    def __init__(self) -> None:
        self.desk_queue = MemoryDeskQueue()
        self.figures = MemoryFigures()
        self.cases = MemoryCases(self.desk_queue, self.figures)
        self.receipts = MemoryReceipts()
        self.repeats = MemoryRepeatIndex()
        self.timers = MemoryTimerBook()
        self.actions = MemoryActionLog()
        self.dead_letters = MemoryDeadLetters()
        self.clock = MemoryClock()

    async def prepare(self) -> None:
        pass

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        pass


# mypy checks here that the memory adapter provides every port the way the services' code expects it
_PROVIDES_STORAGE: Callable[[], Storage] = MemoryStorage
