"""A token bucket: at most so many requests a minute, whatever the poll interval or paging."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: Entur's limit on its SIRI REST interface: 4 requests a minute per client.
RATE_PER_MINUTE = 4.0


class TokenBucket:
    """At most ``rate_per_minute`` requests a minute on average, bursts up to ``capacity``.

    ``take`` waits (through ``wait``, which returns True when the wait was interrupted) until a
    token is there: the connector never asks faster than the source allows, whatever its poll
    interval or how many ``MoreData`` pages follow each other.
    """

    def __init__(
        self,
        rate_per_minute: float = RATE_PER_MINUTE,
        capacity: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_minute <= 0:
            raise ValueError(f"rate_per_minute must be positive, not {rate_per_minute}")
        self.rate = rate_per_minute / 60.0
        self.capacity = float(capacity if capacity is not None else max(1.0, rate_per_minute))
        self.clock = clock
        self.tokens = self.capacity
        self._updated = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._updated) * self.rate)
        self._updated = now

    def wait_time(self) -> float:
        """Seconds until a token is there (0: now)."""
        with self._lock:
            self._refill()
            return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def try_take(self) -> bool:
        """Take a token if one is there."""
        with self._lock:
            self._refill()
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False

    def take(self, wait: Callable[[float], bool]) -> float | None:
        """Take a token, waiting for it; the seconds waited, or None when interrupted."""
        waited = 0.0
        while not self.try_take():
            delay = self.wait_time()
            if wait(delay):
                return None
            waited += delay
        return waited
