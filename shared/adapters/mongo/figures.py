"""The facts of the supervisors' figures on MongoDB, kept like the desks' queue (shardlog.py says why): each
unit's facts of a month in SHARDS shards, `figures_log` `<unit>:<month>:<shard>@<n>` with a snapshot every
SNAPSHOT_EVERY revisions in `figures`. A fact is added, never changed: the first of an id stands, so the same
fact filed again by a redelivery, a replay or a rebuild changes nothing.

A reader keeps, per shard, the tally of the facts it has read and adds only the facts that are new since, so a
page over two years of figures costs a lookup per shard, and none for a shard read in the last `fresh_seconds`.
Facts count in the month their case reached its unit, so the months before the last RECENT_MONTHS change only
when an old case is finally worked: those are looked at again every `settled_seconds`, not at every page.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from pymongo.asynchronous.collection import AsyncCollection

from shared.adapters.mongo.ferretdb import Document, GroupCommit
from shared.adapters.mongo.shardlog import ShardLog, case_key, field_key
from shared.domain.facts import Fact, FactKind
from shared.domain.figures import Period, Tally, month_of
from shared.domain.lifecycle import Satisfaction
from shared.domain.triage import Category, Unit
from shared.domain.workdays import local_date

log = logging.getLogger(__name__)

# A unit's month at 100,000 cases a year is about 12,000 facts: four shards keep a snapshot near 250 kB, and a
# page over 13 months of six units reads 312 shards.
SHARDS = 4
SNAPSHOT_EVERY = 32
RECENT_MONTHS = 3  # this month and the two before it: where most facts of a day land
NO_UNIT = "none"


def shard_of(fact: Fact) -> str:
    """A case's facts of one unit and month share a shard."""
    spread = int.from_bytes(hashlib.blake2b(fact.case_id.encode(), digest_size=8).digest(), "big") % SHARDS
    return shard_id(fact.unit, month_of(fact.cohort), spread)


def shard_id(unit: Unit | None, month: str, shard: int) -> str:
    return f"{unit.value if unit else NO_UNIT}:{month}:{shard}"


def fact_document(fact: Fact) -> str:
    """A fact as one line of fields joined by `|` (ids, codes, ISO days and decimals never hold one): a shard
    holds thousands and a cold reader reads them all, so the format is what splits fastest."""
    f = fact
    return "|".join((f.kind.value, f.case_id, f.episode, f.unit.value if f.unit else "", f.day.isoformat(),
                     f.cohort.isoformat(), f.category.value if f.category else "", f.channel,
                     "" if f.flag is None else "1" if f.flag else "0",
                     f.satisfaction.value if f.satisfaction else "", "" if f.amount is None else str(f.amount)))


_KINDS = {k.value: k for k in FactKind}
_UNITS = {u.value: u for u in Unit}
_CATEGORIES = {c.value: c for c in Category}
_SATISFACTION = {s.value: s for s in Satisfaction}
_FLAGS = {"": None, "1": True, "0": False}


def fact_from_document(key: str, value: str) -> Fact:
    kind, case_id, episode, unit, day, cohort, category, channel, flag, satisfaction, amount = value.split("|")
    return Fact(id=case_key(key), kind=_KINDS[kind], case_id=case_id, episode=episode, unit=_UNITS.get(unit),
                day=date.fromisoformat(day), cohort=date.fromisoformat(cohort), category=_CATEGORIES.get(category),
                channel=channel, flag=_FLAGS[flag], satisfaction=_SATISFACTION.get(satisfaction),
                amount=Decimal(amount) if amount else None)


@dataclass
class _Read:
    """What this process has counted of a shard."""

    seen: set[str] = field(default_factory=set)
    tally: Tally = field(default_factory=Tally)
    at: float = float("-inf")  # monotonic time of the last catch-up


class MongoFigures:
    def __init__(self, snapshots: AsyncCollection[Document], records: AsyncCollection[Document],
                 commit: GroupCommit | None = None, fresh_seconds: float = 0.0, settled_seconds: float = 0.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.book = ShardLog(snapshots, records, SNAPSHOT_EVERY, commit)
        self.fresh_seconds = fresh_seconds
        self.settled_seconds = max(fresh_seconds, settled_seconds)
        self.clock = clock
        self._read: dict[str, _Read] = {}
        self._months: dict[tuple[Unit | None, str], tuple[tuple[int, ...], Tally]] = {}  # shards' sizes, their sum

    async def add(self, facts: Sequence[Fact]) -> None:
        """A save's facts, one revision per shard they fall in (most saves: one)."""
        by_shard: dict[str, list[Document]] = {}
        for f in facts:
            by_shard.setdefault(shard_of(f), []).append({"key": field_key(f.id), "op": "add",
                                                         "value": fact_document(f)})
        await asyncio.gather(*(self.book.change(shard, *changes) for shard, changes in by_shard.items()))

    async def tally(self, unit: Unit | None, month: str) -> Tally:
        """The month's tally, added up again only when one of its shards has new facts: most months of a page
        over two years have none. The tally returned is shared: read it, never change it."""
        recent = Period.month(month_of(local_date(self.clock()))).shifted(RECENT_MONTHS - 1).label
        fresh = self.fresh_seconds if month >= recent else self.settled_seconds
        shards = [shard_id(unit, month, s) for s in range(SHARDS)]
        parts = await asyncio.gather(*(self._shard(shard, fresh) for shard in shards))
        sizes = tuple(len(self._read[shard].seen) for shard in shards)
        known = self._months.get((unit, month))
        if known is None or known[0] != sizes:
            known = self._months[unit, month] = (sizes, Tally.combined(parts))
        return known[1]

    async def _shard(self, shard: str, fresh: float) -> Tally:
        read = self._read.setdefault(shard, _Read())
        if time.monotonic() - read.at < fresh:
            return read.tally
        state = await self.book.current(shard)
        read.at = time.monotonic()
        if len(state.cases) == len(read.seen):
            return read.tally  # facts are only ever added: the same number is the same facts
        for key, value in state.cases.items():
            if key in read.seen:
                continue
            read.seen.add(key)
            try:
                read.tally.count(fact_from_document(key, value))
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("fact %s of %s cannot be read, left out: %s", key, shard, exc)
        return read.tally
