"""The topic catalogue: every Kafka topic byflyt uses, with its key, shape and retention.

Names here are logical; the configured ``BYFLYT_TOPIC_PREFIX`` is added in one place
(:meth:`byflyt.settings.Settings.topic`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its logical name, what its key and value are, and how it is kept."""

    name: str
    key: str
    value: str
    compacted: bool = False
    partitions: int | None = None  # None: the configured default
    config: dict[str, str] = field(default_factory=dict)

    def kafka_config(self) -> dict[str, str]:
        """Topic-level Kafka configuration."""
        conf = {"cleanup.policy": "compact" if self.compacted else "delete"}
        if not self.compacted:
            conf["retention.ms"] = str(90 * 24 * 3600 * 1000)
        conf.update(self.config)
        return conf


BIKE_POINTS = TopicSpec("bike.points", "source:point_id", "CountPoint", compacted=True)
BIKE_COUNTS = TopicSpec(
    "bike.counts", "kommune_nr (older producers: source:point_id)", "Count (models/codec_counts)"
)
COUNTS_FETCHED = TopicSpec(
    "bike.fetched", "source:point_id", "FetchedWindow: the hours a connector asked a source for"
)
BIKE_COUNTS_BY_KOMMUNE = TopicSpec(
    "bike.counts.by-kommune", "kommune_nr", "Count (records of bike.counts keyed otherwise)"
)
TRIP_UPDATES = TopicSpec("transit.trip-updates", "feed:service_date:trip_id", "TripState")
STOP_CALLS = TopicSpec("transit.stop-calls", "kommune_nr", "StopCall")
VEHICLES = TopicSpec("transit.vehicles", "feed:vehicle_id", "VehicleSeen")
TABLE_RECORD_MAX_BYTES = 32 * 1024 * 1024
"""The largest state record a worker writes to a table's changelog (the topic's
``max.message.bytes`` and the producer's request size). A kommune-hour of a national feed's
busiest kommune holds tens of thousands of facts: several MB, past Kafka's 1 MB default."""

TRANSIT_FACTS = TopicSpec(
    "transit.facts.by-kommune", "kommune_nr", "TransitFact (calls, coverage, crossings, vehicles)"
)
VOLUMES_HOURLY = TopicSpec(
    "volumes.hourly", "kommune_nr|mode|metric|hour", "HourlyVolume", compacted=True
)
SENSORS_STATUS = TopicSpec("sensors.status", "source:point_id", "SensorStatus", compacted=True)
FEED_HEALTH = TopicSpec(
    "transit.feed-health",
    "source:kind",
    "FeedHealth (one per poll of a feed)",
    config={"retention.ms": str(7 * 24 * 3600 * 1000)},
)
CHECKPOINTS = TopicSpec(
    "connector.checkpoints", "connector:source:item", "Checkpoint", compacted=True, partitions=1
)
DLQ = TopicSpec("dlq.rejected", "source", "Rejected")

ALL_TOPICS: tuple[TopicSpec, ...] = (
    BIKE_POINTS,
    BIKE_COUNTS,
    COUNTS_FETCHED,
    BIKE_COUNTS_BY_KOMMUNE,
    TRIP_UPDATES,
    STOP_CALLS,
    VEHICLES,
    TRANSIT_FACTS,
    VOLUMES_HOURLY,
    SENSORS_STATUS,
    FEED_HEALTH,
    CHECKPOINTS,
    DLQ,
)
