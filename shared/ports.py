"""What the services need from storage, in the domain's words. The MongoDB adapter (shared/adapters/mongo)
and the in-memory one (shared/adapters/memory.py, for unit tests) both provide these.

Every write is idempotent: ids derive from the events that cause them, so a redelivered event finds its
work done. A case is saved only from the version it was loaded at; a writer that lost the race gets
`Contended` and its event is retried against the case as it is now.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Protocol

from shared.domain.case import Case
from shared.domain.change import Change, TimelineEntry
from shared.domain.facts import Fact
from shared.domain.figures import Tally
from shared.domain.followup import TimerSpec
from shared.domain.queue import QueueEntry
from shared.domain.repeats import CaseFingerprint
from shared.domain.triage import Unit


class CaseRepository(Protocol):
    async def get(self, case_id: str) -> Case | None: ...

    async def add(self, case: Case, change: Change) -> bool:
        """Store a new case with its first timeline entries; False if a case with its id exists already."""
        ...

    async def save(self, case: Case, change: Change) -> None:
        """Write what `change` set and added, if the case is still at the version it was loaded at
        (otherwise `Contended`). A change that changed nothing is not written."""
        ...

    async def fingerprints(self, case_ids: Sequence[str]) -> list[CaseFingerprint]:
        """What repeat detection needs of those of these cases that are still open."""
        ...

    async def timeline(self, case_id: str) -> list[TimelineEntry]: ...


class DeskQueue(Protocol):
    """Each unit's queue, kept by every case save (shared/adapters/projection.py) so that a desk's page is read
    by key, never by scanning the cases. Writes carry the case's version, so they may come in any order."""

    async def entries(self, unit: Unit) -> list[QueueEntry]:
        """Every entry of the unit's queue (order unspecified)."""
        ...

    async def put(self, entry: QueueEntry) -> None:
        """File or refresh the entry, unless a newer version of it is filed already."""
        ...

    async def remove(self, case_id: str, unit: Unit, version: int) -> None:
        """Take the case out of the unit's queue, unless filed there at `version` or later."""
        ...


class FigureBook(Protocol):
    """The facts the supervisors' figures are counted from, kept by every case save like the queue, filed by
    unit and month. A fact's id decides: the first fact of an id stands, so a redelivery adds nothing."""

    async def add(self, facts: Sequence[Fact]) -> None: ...

    async def tally(self, unit: Unit | None, month: str) -> Tally:
        """The tally of the facts of a unit (None: repeats merged before routing) that count in a month."""
        ...


class ReceiptBook(Protocol):
    """Which case an incoming report went to, when it did not open its own (a repeat joined another)."""

    async def claim(self, receipt: str, case_id: str, at: datetime) -> str:
        """Record that `receipt` belongs to `case_id`; a redelivery gets the first answer back."""
        ...

    async def case_of(self, receipt: str) -> str | None: ...


class RepeatIndex(Protocol):
    """The recent cases filed under each repeat key (a complainant's keyed hash, or the exact words)."""

    async def file_under(self, keys: Sequence[str], case_id: str) -> dict[str, list[str]]:
        """File a case under its keys, and say which cases each key named before (most recent last): one
        trip per key for the look-up and the filing both. A key remembers only its most recent cases."""
        ...

    async def unfile(self, keys: Sequence[str], case_id: str) -> None:
        """Take a filing back: the report joined an open case instead of opening its own."""
        ...


class TimerBook(Protocol):
    async def schedule(self, timers: Sequence[TimerSpec], today: date) -> None:
        """File each timer once, under the day it falls due (an overdue one under today)."""
        ...

    async def cursor(self) -> str | None:
        """The earliest day that may still hold unfinished timers."""
        ...

    async def move_cursor(self, from_day: str, to_day: str) -> None: ...

    async def unfinished_on(self, day: str) -> list[TimerSpec]: ...

    async def claim(self, timer: TimerSpec, owner: str, now: datetime, lease_until: datetime) -> bool:
        """Take a timer for firing; no two instances hold it at once, and a dead holder's lease runs out."""
        ...

    async def is_finished(self, timer: TimerSpec, day: str) -> bool:
        """Whether the timer, filed under `day`, was finished (by another instance, perhaps)."""
        ...

    async def finish(self, timer: TimerSpec, day: str) -> None: ...


class ActionLog(Protocol):
    """The outcome of each desk action, decided once, for the desk to read back."""

    async def record(self, action_id: str, record: Mapping[str, Any]) -> Mapping[str, Any]:
        """Keep the first record under this id; returns the one kept."""
        ...

    async def get(self, action_id: str) -> Mapping[str, Any] | None: ...


class DeadLetterLog(Protocol):
    """Dead letters by the consumed record (`topic:partition:offset`, as `shared.handling.Source` names it)."""

    async def record(self, letter_id: str, record: Mapping[str, Any]) -> None: ...

    async def has(self, letter_id: str) -> bool: ...


class SimulatedClock(Protocol):
    """Demo and tests only: an offset that moves the follow-up's clock, so deadlines can be passed."""

    async def offset_seconds(self) -> float: ...

    async def set_offset_seconds(self, seconds: float) -> None: ...


class StoreUnavailable(Exception):
    """The store cannot be reached now; a reader should answer "try again later"."""


class Storage(Protocol):
    """Every port, as one service is given them, and the connection they share."""

    @property
    def cases(self) -> CaseRepository: ...

    @property
    def desk_queue(self) -> DeskQueue: ...

    @property
    def figures(self) -> FigureBook: ...

    @property
    def receipts(self) -> ReceiptBook: ...

    @property
    def repeats(self) -> RepeatIndex: ...

    @property
    def timers(self) -> TimerBook: ...

    @property
    def actions(self) -> ActionLog: ...

    @property
    def dead_letters(self) -> DeadLetterLog: ...

    @property
    def clock(self) -> SimulatedClock: ...

    async def prepare(self) -> None: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
