"""Publishing complaints to the channel-events topic, keyed by the event id (shared/publishing.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from shared import topics
from shared.events import ChannelEvent
from shared.publishing import KafkaPublisher, PublishFailed

__all__ = ["ComplaintPublisher", "Publish", "PublishFailed"]
Publish = Callable[[ChannelEvent], Awaitable[None]]


class ComplaintPublisher:
    def __init__(self, bootstrap_servers: str, timeout: float) -> None:
        self.kafka = KafkaPublisher(bootstrap_servers, timeout, client_id="triage-open311")

    async def __call__(self, event: ChannelEvent) -> None:
        await self.kafka.send(event, topics.CHANNEL_EVENTS, key=event.event_id.encode())

    async def connect(self) -> bool:
        return await self.kafka.connect()

    async def close(self) -> None:
        await self.kafka.close()
