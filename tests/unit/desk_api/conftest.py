"""Fixtures of the desk API's tests: a client of the app wired to the fakes in fakes.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from services.desk_api.main import create_app
from tests.unit.desk_api.fakes import FakePublisher, FakeStore, _client, desk_settings


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
async def client(store: FakeStore, publisher: FakePublisher) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(desk_settings(), store=store, publish=publisher)
    async with _client(app) as c:
        yield c
