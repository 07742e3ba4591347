"""What sensor monitoring reads and writes: feed health per snapshot, and sensor states.

:class:`FeedHealth` is what a transit connector says about every poll of a feed (on
``transit.feed-health``): when it read, the snapshot's own timestamp, and how many entities the
snapshot held. :class:`SensorStatus` is a counter point's or a feed's current state (on the
compacted ``sensors.status``, keyed ``source:point_id``; a feed's ``point_id`` is its kind).
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from byflyt.models.base import KommuneNr, PointKeyed, SourceName, UtcDatetime, WireModel

SensorState = Literal["up", "silent", "flat", "low_coverage", "stale", "empty"]
"""Counter points are ``up``, ``silent``, ``flat`` or ``low_coverage``; feeds ``up``, ``stale``
or ``empty``. Every state but ``up`` is an outage."""

UP: Final = "up"


class FeedHealth(WireModel):
    """One poll of a transit feed, as its connector saw it.

    ``snapshot_at`` is the snapshot's own (header) timestamp, None when the feed has never
    given one. ``entities`` is None when the poll brought nothing new (HTTP 304, or the same
    snapshot again); cancelled journeys count as entities (a cancellation is service, not a
    missing feed) and are also given in ``cancelled``.
    """

    source: SourceName
    kind: str = Field(min_length=1, max_length=32)
    read_at: UtcDatetime
    snapshot_at: UtcDatetime | None = None
    entities: int | None = Field(default=None, ge=0)
    cancelled: int = Field(default=0, ge=0)

    @property
    def key(self) -> str:
        """The Kafka key: ``source:kind`` (one feed's polls stay in order)."""
        return f"{self.source}:{self.kind}"

    @property
    def age_seconds(self) -> float | None:
        """How old the snapshot was when it was read (None: no snapshot timestamp)."""
        if self.snapshot_at is None:
            return None
        return (self.read_at - self.snapshot_at).total_seconds()


class SensorStatus(PointKeyed):
    """The current state of a counter point or transit feed, and since when (event time).

    ``as_of`` is the source time the state was judged at: the end of the newest hour judged
    for a counter, the read time of the poll for a feed.
    """

    sensor: Literal["point", "feed"]
    kommune_nr: KommuneNr | None = None
    state: SensorState
    since: UtcDatetime
    as_of: UtcDatetime
    details: str = ""
