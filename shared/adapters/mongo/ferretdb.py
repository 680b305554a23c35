"""What FerretDB (v1, on SQLite) alone needs, kept apart so a reader sees what MongoDB would need without it.

- Nested arrays cannot be stored: pairs such as an assessment's (category, probability) become objects.
- An update is applied by reading the document and writing it back whole, so two updates of one document at
  once may lose one, and a filter on anything but `_id` decodes the whole collection. A compare-and-set on
  a case's version is therefore a claim: the writer inserts `<case>@<version>` (a unique `_id`) before it
  writes, and only the claim's owner writes. MongoDB alone would filter the update on the version.
- The few documents many cases share (the timer index) are written by one writer at a time in this
  process, and the changes queued meanwhile go in one write (a group commit).
- Its SQLite backend keeps 100 connections per database, and an update holds one while it asks for
  another: with a hundred updates waiting at once, none gets its second and the database stops answering
  for good (seen here under load). Each process therefore keeps a few commands in flight
  (`Settings.mongodb_max_connections`, PyMongo's pool), so that all processes together stay below 100:
  the four services and the desk API at 16 each; lower it when services run several instances.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from shared.handling import Contended

Document = dict[str, Any]
T = TypeVar("T")


def pairs_as_objects(pairs: list[Any], first: str, second: str) -> list[Document]:
    return [{first: a, second: b} for a, b in pairs]


def objects_as_pairs(objects: list[Mapping[str, Any]], first: str, second: str) -> list[tuple[Any, Any]]:
    return [(o[first], o[second]) for o in objects]


async def is_ferretdb(database: Any) -> bool:
    """FerretDB names itself in buildInfo; MongoDB does not."""
    info = await database.command("buildInfo")
    return "ferretdbVersion" in info or "ferretdb" in str(info.get("ferretdb", "")).lower()


class VersionClaims:
    """Compare-and-set on a case's version, by claiming `<case>@<version>` before writing."""

    def __init__(self, claims: AsyncCollection[Document]) -> None:
        self.claims = claims

    async def update(self, cases: AsyncCollection[Document], case_id: str, version: int, update: Document,
                     op_id: str) -> None:
        """Write `update` to the case at `version`. A writer that crashed between its claim and its write
        finishes the job when its event (the same `op_id`) comes again."""
        claim = await self.claims.find_one_and_update(
            {"_id": f"{case_id}@{version}"}, {"$setOnInsert": {"op": op_id}},
            upsert=True, return_document=ReturnDocument.AFTER,
        )
        if claim is None or claim["op"] != op_id:
            raise Contended(f"case {case_id} at version {version} is being changed by another writer")
        await cases.update_one({"_id": case_id}, update)


class KeyedLocks:
    """One asyncio lock per key, kept only while someone holds or awaits it (so no lock per key forever)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        lock = lock or asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            _, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


@dataclass
class _Queued(Generic[T]):
    """Changes waiting to go in one write."""

    items: list[T] = field(default_factory=list)
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupCommit:
    """Writes to shared documents, serialized per key, the changes queued meanwhile written together: a
    busy consumer does not wait in line once per case."""

    def __init__(self) -> None:
        self.locks = KeyedLocks()
        self._queued: dict[str, _Queued[Any]] = {}

    async def write(self, key: str, change: T, write: Callable[[list[T]], Awaitable[Any]]) -> None:
        await self.write_all(key, [change], write)

    async def write_all(self, key: str, changes: Sequence[T], write: Callable[[list[T]], Awaitable[Any]]) -> None:
        """Several changes of one caller, in one write (with whatever else is queued)."""
        queued = self._queued.get(key)
        if queued is None:
            queued = self._queued[key] = _Queued()
        queued.items.extend(changes)
        async with self.locks.hold(key):
            if self._queued.get(key) is queued:  # nobody has written these changes yet
                del self._queued[key]
                try:
                    await write(queued.items)
                    queued.done.set_result(None)
                except Exception as exc:  # every waiter sees it, and retries its own change
                    queued.done.set_exception(exc)
                except BaseException:  # cancelled: the others retry rather than wait forever
                    queued.done.set_exception(Contended(f"the write of {key} was cancelled"))
                    queued.done.exception()  # retrieved here, should nobody else be waiting
                    raise
        await queued.done
