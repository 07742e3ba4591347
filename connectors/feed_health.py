"""Feed health for transit connectors: one :class:`FeedHealth` record per poll of a feed.

A connector notes every poll (a new snapshot, the same one again, or HTTP 304) with
:meth:`FeedHealthLog.note`; its runner (``connectors/snapshots.py``) produces what was noted
(:meth:`FeedHealthLog.take`) after each pass. The status agent (``streams/status.py``) judges
``stale`` and ``empty`` from these records, so connectors only describe what they saw.
Cancelled journeys must be counted in ``entities`` (and in ``cancelled``): a mass cancellation
is a service event, not an empty feed.
"""

from __future__ import annotations

from datetime import datetime

from byflyt.connectors.base import Record
from byflyt.metrics import Metrics
from byflyt.models.status import FeedHealth
from byflyt.topics import FEED_HEALTH


class FeedHealthLog:
    """The health records of one connector's polls since the last delivery."""

    def __init__(self, source: str, metrics: Metrics | None = None) -> None:
        self.source = source
        self.metrics = metrics
        self._records: list[Record] = []

    def note(
        self,
        kind: str,
        *,
        read_at: datetime,
        snapshot_at: datetime | None,
        entities: int | None,
        cancelled: int = 0,
    ) -> FeedHealth:
        """Note one poll of feed ``kind`` (``entities`` None: nothing new was read)."""
        health = FeedHealth(
            source=self.source,
            kind=kind,
            read_at=read_at,
            snapshot_at=snapshot_at,
            entities=entities,
            cancelled=cancelled,
        )
        self._records.append(Record.of(FEED_HEALTH, health))
        if self.metrics is not None:
            if entities is not None:
                self.metrics.feed_entities.labels(self.source, kind).set(entities)
            if snapshot_at is not None:
                age = (read_at - snapshot_at).total_seconds()
                self.metrics.feed_snapshot_age.labels(self.source, kind).set(age)
        return health

    def take(self) -> list[Record]:
        """The noted records, emptying the log."""
        records, self._records = self._records, []
        return records
