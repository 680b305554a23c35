"""The facts of the supervisors' figures on MongoDB, kept like the desks' queue (shardlog.py says why): each
unit's facts of a month in SHARDS shards, `figures_log` `<unit>:<month>:<shard>@<n>` with a snapshot every
SNAPSHOT_EVERY revisions in `figures`. A fact is added, never changed: the first of an id stands, so the same
fact filed again by a redelivery, a replay or a rebuild changes nothing.

A reader keeps, per shard, the tally of the facts it has read and adds only the facts that are new since, so a
page over a year of figures costs a lookup per shard, and none for a shard read in the last `fresh_seconds`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from pymongo.asynchronous.collection import AsyncCollection

from shared.adapters.mongo.ferretdb import Document, GroupCommit
from shared.adapters.mongo.shardlog import ShardLog, case_key, field_key
from shared.domain.facts import Fact, FactKind
from shared.domain.figures import Tally, month_of
from shared.domain.lifecycle import Satisfaction
from shared.domain.triage import Category, Unit

log = logging.getLogger(__name__)

# A unit's month at 100,000 cases a year is about 12,000 facts: four shards keep a snapshot near 250 kB, and a
# page over 13 months of six units reads 312 shards.
SHARDS = 4
SNAPSHOT_EVERY = 32
NO_UNIT = "none"


def shard_of(fact: Fact) -> str:
    """A case's facts of one unit and month share a shard."""
    spread = int.from_bytes(hashlib.blake2b(fact.case_id.encode(), digest_size=8).digest(), "big") % SHARDS
    return shard_id(fact.unit, month_of(fact.cohort), spread)


def shard_id(unit: Unit | None, month: str, shard: int) -> str:
    return f"{unit.value if unit else NO_UNIT}:{month}:{shard}"


def fact_document(fact: Fact) -> str:
    """A fact as a positional JSON array: a shard holds thousands, read whole by a cold reader."""
    f = fact
    return json.dumps([f.kind.value, f.case_id, f.episode, f.unit.value if f.unit else None, f.day.isoformat(),
                       f.cohort.isoformat(), f.category.value if f.category else None, f.channel, f.flag,
                       f.satisfaction.value if f.satisfaction else None,
                       str(f.amount) if f.amount is not None else None], ensure_ascii=False, separators=(",", ":"))


def fact_from_document(key: str, value: str) -> Fact:
    kind, case_id, episode, unit, day, cohort, category, channel, flag, satisfaction, amount = json.loads(value)
    return Fact(id=case_key(key), kind=FactKind(kind), case_id=str(case_id), episode=str(episode),
                unit=Unit(unit) if unit else None, day=date.fromisoformat(day), cohort=date.fromisoformat(cohort),
                category=Category(category) if category else None, channel=str(channel),
                flag=bool(flag) if flag is not None else None,
                satisfaction=Satisfaction(satisfaction) if satisfaction else None,
                amount=Decimal(amount) if amount is not None else None)


@dataclass
class _Read:
    """What this process has counted of a shard."""

    seen: set[str] = field(default_factory=set)
    tally: Tally = field(default_factory=Tally)
    at: float = float("-inf")  # monotonic time of the last catch-up


class MongoFigures:
    def __init__(self, snapshots: AsyncCollection[Document], records: AsyncCollection[Document],
                 commit: GroupCommit | None = None, fresh_seconds: float = 0.0) -> None:
        self.book = ShardLog(snapshots, records, SNAPSHOT_EVERY, commit)
        self.fresh_seconds = fresh_seconds
        self._read: dict[str, _Read] = {}
        self._months: dict[tuple[Unit | None, str], tuple[tuple[int, ...], Tally]] = {}  # shards' sizes, their sum

    async def add(self, facts: Sequence[Fact]) -> None:
        if facts:
            await asyncio.gather(*(self.book.change(shard_of(f), {"key": field_key(f.id), "op": "add",
                                                                  "value": fact_document(f)}) for f in facts))

    async def tally(self, unit: Unit | None, month: str) -> Tally:
        """The month's tally, added up again only when one of its shards has new facts: most months of a page
        over two years have none. The tally returned is shared: read it, never change it."""
        shards = [shard_id(unit, month, s) for s in range(SHARDS)]
        parts = await asyncio.gather(*(self._shard(shard) for shard in shards))
        sizes = tuple(len(self._read[shard].seen) for shard in shards)
        known = self._months.get((unit, month))
        if known is None or known[0] != sizes:
            known = self._months[unit, month] = (sizes, Tally.combined(parts))
        return known[1]

    async def _shard(self, shard: str) -> Tally:
        read = self._read.setdefault(shard, _Read())
        if time.monotonic() - read.at < self.fresh_seconds:
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
