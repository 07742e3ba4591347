"""Answers that are costly to compute, reused for a few seconds and computed once at a time.

An index reads every point-hour of a period and of the year before it (10⁵ rows for a month of a
region), which takes a second of a core; the same question asked by many clients at once would
otherwise compute it once per request and starve every other request. :class:`Reuse` keeps each
answer for ``seconds`` (its age counted from when its computation began) and lets only one thread
compute a given key. While it does, the others are given the previous answer, if there is one
(so an answer is at most ``seconds`` plus one computation old), or wait for the new one: waiting
threads would hold the server's request threads for nothing. Failures are not kept: the next
request computes again.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

_V = TypeVar("_V")


class Reuse(Generic[_V]):
    """Computed values by key, each reused for ``seconds`` (0: never reused)."""

    def __init__(
        self,
        seconds: float,
        *,
        max_entries: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[float, _V]] = OrderedDict()
        self._computing: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, compute: Callable[[], _V]) -> tuple[_V, float]:
        """The value of ``key`` and its age in seconds; ``compute()`` when none is fresh."""
        if self.seconds <= 0:
            return compute(), 0.0
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                age = self.clock() - entry[0]
                if age < self.seconds or key in self._computing:
                    return entry[1], age  # fresh, or the last answer while one is computed
            turn = self._computing.setdefault(key, threading.Lock())
        with turn:
            try:
                found = self._fresh(key)  # computed by the thread this one waited for
                if found is not None:
                    return found
                began = self.clock()
                value = compute()
                with self._lock:
                    self._entries[key] = (began, value)
                    self._entries.move_to_end(key)
                    while len(self._entries) > self.max_entries:
                        self._entries.popitem(last=False)
            finally:
                with self._lock:
                    self._computing.pop(key, None)
        return value, max(0.0, self.clock() - began)

    def _fresh(self, key: Hashable) -> tuple[_V, float] | None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            return None
        age = self.clock() - entry[0]
        return (entry[1], age) if age < self.seconds else None
