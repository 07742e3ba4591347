"""The one runner of the transit feeds: poll → fetch → parse → diff → send → checkpoint/health.

GTFS-realtime (``connectors/gtfs_rt.py``) and SIRI (``connectors/siri.py``) answer a poll with a
whole snapshot (or, for SIRI, a page of changes). Each is a :class:`SnapshotConnector`: it
fetches (or replays, ``connectors/replay.py``) and parses its answer and returns the records;
:class:`SnapshotRunner` owns the rest on top of the shared
:class:`~byflyt.connectors.base.ConnectorRunner` (producer, dead-letter topic, checkpoints,
back-off): a limit on the number of polls (``--polls N``), the pages that follow at once
(``more_data``: SIRI's ``MoreData``), and the feed-health records noted during a pass, produced
after it.
"""

from __future__ import annotations

import gc
import re
import threading
from datetime import timedelta
from typing import Any, TypeVar

from kafka import KafkaProducer

from byflyt.connectors.base import Connector, ConnectorRunner, RunStats
from byflyt.connectors.feed_health import FeedHealthLog
from byflyt.errors import ConfigError
from byflyt.settings import Settings

ItemT = TypeVar("ItemT")

MAX_PAGES = 500  # pages that follow one poll at once: a guard against a server that never ends
_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min)?\s*$")


def parse_interval(text: str) -> timedelta:
    """A ``--interval``: ``10s``, ``1m`` or plain seconds; anything else is a ConfigError."""
    match = _INTERVAL.match(text)
    seconds = 0.0
    if match:
        seconds = float(match[1]) * (60 if match[2] in ("m", "min") else 1)
    if seconds <= 0:
        raise ConfigError("--interval", f"{text!r} is not a positive interval", "write 10s or 1m")
    return timedelta(seconds=seconds)


def settle_heap() -> None:
    """Keep what is loaded so far (the static feed and its look-ups) out of garbage collection.

    Why: a connector holds hundreds of thousands of static objects for its whole life, and
    every full collection, triggered by the records each snapshot makes, would walk them all
    again (about a sixth of a national snapshot's CPU).
    """
    gc.collect()
    gc.freeze()


class SnapshotConnector(Connector[ItemT]):
    """A feed polled as snapshots: its health log, and whether another page follows at once.

    ``stopping`` is set by the runner when the run is asked to stop (a connector that waits,
    for a request token say, waits on it).
    """

    health: FeedHealthLog
    more_data: bool = False
    stopping: threading.Event


class SnapshotRunner(ConnectorRunner[ItemT]):
    """Runs a :class:`SnapshotConnector`, able to stop after ``polls`` passes.

    A pass polls every item once, then the pages the feed says follow (``more_data``, up to
    :data:`MAX_PAGES`), then produces the feed-health records noted on the way.
    """

    def __init__(
        self, connector: SnapshotConnector[ItemT], settings: Settings, **kwargs: Any
    ) -> None:
        super().__init__(connector, settings, **kwargs)
        self.feed = connector
        connector.stopping = self._stopping
        self.polls: int | None = None
        self._passes = 0

    def run(self, *, once: bool = False, interval: timedelta = timedelta(minutes=15)) -> RunStats:
        """Poll once or every ``interval`` until stopped (see :meth:`ConnectorRunner.run`)."""
        settle_heap()
        return super().run(once=once, interval=interval)

    def run_polls(self, polls: int | None, interval: timedelta) -> RunStats:
        """Poll every ``interval``, ``polls`` times (None: until stopped)."""
        self.polls, self._passes = polls, 0
        return self.run(once=polls == 1, interval=interval)

    def _pass(self, producer: KafkaProducer, stats: RunStats) -> None:
        super()._pass(producer, stats)
        pages = 1
        while self.feed.more_data and pages < MAX_PAGES and not self._stopping.is_set():
            super()._pass(producer, stats)
            pages += 1
        stats.counts["pages"] += pages
        self.deliver(producer, self.feed.health.take(), [], stats)
        self._passes += 1
        if self.polls is not None and self._passes >= self.polls:
            self.stop()
