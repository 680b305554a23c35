"""Publishing complaints to the channel-events topic, as the desk API publishes its actions: acks=all, keyed
by the event id, connected again on the next request when Kafka was down."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from faststream.kafka import KafkaBroker

from shared import topics
from shared.events import ChannelEvent

log = logging.getLogger(__name__)
Publish = Callable[[ChannelEvent], Awaitable[None]]


class PublishFailed(Exception):
    pass


class KafkaPublisher:
    def __init__(self, bootstrap_servers: str, timeout: float) -> None:
        self.broker = KafkaBroker(bootstrap_servers, client_id="triage-open311", acks="all")
        self.timeout = timeout
        self._connected = False
        self._lock = asyncio.Lock()

    async def connect(self) -> bool:
        async with self._lock:
            if not self._connected:
                try:
                    await asyncio.wait_for(self.broker.connect(), self.timeout)
                except Exception as exc:
                    log.warning("Kafka not reachable yet: %s", type(exc).__name__)
                    await self._reset()
                    return False
                self._connected = True
        return True

    async def _reset(self) -> None:
        try:
            await self.broker.stop()
        except Exception as exc:
            log.debug("closing the Kafka producer failed: %s", type(exc).__name__)

    async def __call__(self, event: ChannelEvent) -> None:
        if not await self.connect():
            raise PublishFailed("broker not connected")
        try:
            await asyncio.wait_for(self.broker.publish(event, topics.CHANNEL_EVENTS, key=event.event_id.encode()),
                                   self.timeout)
        except Exception as exc:
            raise PublishFailed(type(exc).__name__) from exc

    async def close(self) -> None:
        async with self._lock:
            if self._connected:
                await self._reset()
                self._connected = False
