"""Requests per minute, per api key's upstream (or per address, for requests without a valid key)."""

from __future__ import annotations

import time
from collections.abc import Callable

MAX_TRACKED = 10_000  # a flood from many addresses shares one budget beyond this, instead of growing memory


class RateLimit:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.window = -1
        self.counts: dict[str, int] = {}

    def allow(self, who: str) -> bool:
        window = int(self.clock() // 60)
        if window != self.window:
            self.window, self.counts = window, {}
        if who not in self.counts and len(self.counts) >= MAX_TRACKED:
            who = "overflow"
        self.counts[who] = self.counts.get(who, 0) + 1
        return self.counts[who] <= self.per_minute

    def retry_after(self) -> int:
        return max(1, 60 - int(self.clock() % 60))
