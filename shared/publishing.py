"""Publishing from an HTTP app (the desk API, the Open311 gateway): one event at a time, acks=all, keyed, and
a broker that is down does not stop the app from answering reads; it is connected again on the next publish."""

from __future__ import annotations

import asyncio
import logging

from faststream.kafka import KafkaBroker
from pydantic import BaseModel

from shared.config import bootstrap_servers as servers

log = logging.getLogger(__name__)


class PublishFailed(Exception):
    """The broker did not confirm the event: it was not (reliably) published; try again."""


class KafkaPublisher:
    def __init__(self, bootstrap_servers: str, timeout: float, client_id: str) -> None:
        self.broker = KafkaBroker(servers(bootstrap_servers), client_id=client_id,
                                  acks="all")  # a confirmed event survives a broker restart
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
        except Exception as exc:  # a half-open producer may fail to close; the next connect starts afresh
            log.debug("closing the Kafka producer failed: %s", type(exc).__name__)

    async def send(self, event: BaseModel, topic: str, key: bytes, headers: dict[str, str] | None = None) -> None:
        """Publish and wait for the broker's confirmation; PublishFailed when it does not come."""
        if not await self.connect():
            raise PublishFailed("broker not connected")
        try:
            await asyncio.wait_for(self.broker.publish(event, topic, key=key, headers=headers), self.timeout)
        except Exception as exc:
            raise PublishFailed(type(exc).__name__) from exc

    async def close(self) -> None:
        async with self._lock:
            if self._connected:
                await self._reset()
                self._connected = False
