from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.unit.open311.fakes import FakePublisher, FakeStore, app_of, client_of


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
async def client(store: FakeStore, publisher: FakePublisher) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(app_of(store, publisher)) as c:
        yield c
