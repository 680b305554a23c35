"""Writes to documents many cases share: serialized, and queued changes written together."""

from __future__ import annotations

import asyncio

import pytest

from shared.adapters.mongo.ferretdb import GroupCommit, KeyedLocks


@pytest.fixture
def commit() -> GroupCommit:
    return GroupCommit()


async def test_changes_queued_behind_a_write_go_in_the_next_one(commit: GroupCommit) -> None:
    writes: list[list[int]] = []
    first_started, release = asyncio.Event(), asyncio.Event()

    async def write(items: list[int]) -> None:
        writes.append(list(items))
        first_started.set()
        await release.wait()

    first = asyncio.create_task(commit.write("doc", 1, write))
    await first_started.wait()
    rest = [asyncio.create_task(commit.write("doc", n, write)) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(first, *rest)
    assert writes == [[1], [2, 3, 4]]


async def test_a_failed_write_fails_every_change_in_it(commit: GroupCommit) -> None:
    async def write(items: list[int]) -> None:
        await asyncio.sleep(0)
        raise ConnectionError("store down")

    results = await asyncio.gather(*(commit.write("doc", n, write) for n in range(3)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)


async def test_other_documents_are_not_held_up(commit: GroupCommit) -> None:
    release = asyncio.Event()

    async def slow(items: list[int]) -> None:
        await release.wait()

    async def quick(items: list[int]) -> None:
        return None

    blocked = asyncio.create_task(commit.write("a", 1, slow))
    await asyncio.wait_for(commit.write("b", 2, quick), timeout=5)
    release.set()
    await blocked


async def test_a_keyed_lock_excludes_and_is_forgotten_when_free() -> None:
    locks = KeyedLocks()
    inside: list[str] = []

    async def hold(name: str) -> None:
        async with locks.hold("case:1"):
            inside.append(f"{name} in")
            await asyncio.sleep(0.01)
            inside.append(f"{name} out")

    await asyncio.gather(hold("a"), hold("b"))
    assert inside in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])
    assert len(locks) == 0  # no lock kept for every case ever seen


async def test_a_failure_inside_a_keyed_lock_releases_it() -> None:
    locks = KeyedLocks()
    with pytest.raises(ValueError):
        async with locks.hold("k"):
            raise ValueError("boom")
    async with asyncio.timeout(1), locks.hold("k"):
        pass
    assert len(locks) == 0
