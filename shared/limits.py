"""Counts per minute, per client: the Open311 gateway's requests per upstream (or per address, for requests
without a valid key), and the desk app's failed sign-ins and token attempts per address."""

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

    def over(self, who: str) -> bool:
        """Whether `who` has used up this minute's budget already (without counting this question)."""
        if int(self.clock() // 60) != self.window:
            return False
        return self.counts.get(who if who in self.counts or len(self.counts) < MAX_TRACKED else "overflow",
                               0) >= self.per_minute

    def retry_after(self) -> int:
        return max(1, 60 - int(self.clock() % 60))
