"""The service under test (the `main` its test module imports) on FastStream's in-memory broker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker

from shared.adapters.memory import MemoryStorage


@pytest.fixture
async def broker(request: pytest.FixtureRequest, storage: MemoryStorage) -> AsyncIterator[KafkaBroker]:
    """Started after `storage`, the module's own fixture, has swapped the service's storage for memory."""
    async with TestKafkaBroker(request.module.main.service.broker) as test_broker:
        yield test_broker
