"""Every Prometheus metric byflyt exports, defined in one place.

Names follow Prometheus conventions (``byflyt_`` prefix, base units, ``_total`` counters).
Labels have bounded cardinality: source, connector, agent, kommune, mode, reason code — never
a trip id or a raw error text. The registry is injectable: tests build ``Metrics(registry)`` on
a fresh ``CollectorRegistry`` and read values with ``registry.get_sample_value``.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

#: Every state ``byflyt_sensor_status`` knows: counter points are ``up``, ``silent``, ``flat`` or
#: ``low_coverage``; transit feeds are ``up``, ``stale`` or ``empty``.
SENSOR_STATES: Final = ("up", "silent", "flat", "low_coverage", "stale", "empty")


class Metrics:
    """The metric families, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        # -- connectors ----------------------------------------------------------------------
        self.polls = Counter(
            "byflyt_connector_polls_total",
            "Polls of a source by a connector, by outcome (ok, retry, failed).",
            ["connector", "source", "outcome"],
            registry=registry,
        )
        self.produced = Counter(
            "byflyt_connector_records_total",
            "Records a connector produced to Kafka, by topic.",
            ["connector", "source", "topic"],
            registry=registry,
        )
        self.http_errors = Counter(
            "byflyt_http_errors_total",
            "HTTP errors from sources, by status class (4xx, 5xx, timeout, network).",
            ["source", "status_class"],
            registry=registry,
        )
        self.last_data = Gauge(
            "byflyt_source_last_data_timestamp_seconds",
            "Event time (Unix seconds) of the newest data seen from a source.",
            ["source"],
            registry=registry,
        )
        self.point_last_data = Gauge(
            "byflyt_point_last_data_timestamp_seconds",
            "Event time (Unix seconds) of the newest data seen from a counting point.",
            ["source", "point", "kommune"],
            registry=registry,
        )
        self.snapshots = Counter(
            "byflyt_gtfs_rt_snapshots_total",
            "GTFS-realtime snapshots read, by kind (trip_updates, vehicle_positions) and outcome "
            "(accepted, repeated, not_modified, rejected).",
            ["source", "kind", "outcome"],
            registry=registry,
        )
        self.feed_warnings = Counter(
            "byflyt_gtfs_rt_warnings_total",
            "GTFS-realtime validation warnings (not rejects): missing_vehicle_id, "
            "stale_entity, stale_feed.",
            ["source", "warning"],
            registry=registry,
        )
        self.feed_entities = Gauge(
            "byflyt_feed_entities",
            "Entities in the newest accepted snapshot of a transit feed, by kind (trip_updates, "
            "vehicle_positions, et, vm).",
            ["source", "kind"],
            registry=registry,
        )
        self.feed_snapshot_age = Gauge(
            "byflyt_feed_snapshot_age_seconds",
            "Age of the newest snapshot of a transit feed when it was read: read time minus the "
            "snapshot's own (header) timestamp.",
            ["source", "kind"],
            registry=registry,
        )
        # -- sensor status ---------------------------------------------------------------------
        self.sensor_status = Gauge(
            "byflyt_sensor_status",
            "1 for the current state of a counter point or transit feed, 0 for its other states. "
            "A feed's point is its kind (trip_updates, vehicle_positions, et) and kommune empty.",
            ["source", "point", "kommune", "state"],
            registry=registry,
        )
        self.siri_answers = Counter(
            "byflyt_siri_answers_total",
            "SIRI answers (pages) read, by kind (et, vm) and outcome (accepted, more_data, "
            "error_condition, malformed, html, empty).",
            ["source", "kind", "outcome"],
            registry=registry,
        )
        self.siri_journeys = Counter(
            "byflyt_siri_journeys_total",
            "SIRI ET journeys and VM activities read, by kind and outcome (scheduled, added, "
            "cancelled, vehicle, rejected).",
            ["source", "kind", "outcome"],
            registry=registry,
        )
        self.siri_warnings = Counter(
            "byflyt_siri_warnings_total",
            "SIRI input tolerated but not fully used (not rejects): stop_not_on_journey, "
            "stop_ref_mismatch, missing_vehicle_ref, no_response_timestamp, requestor_reset.",
            ["source", "warning"],
            registry=registry,
        )
        self.siri_train_refs = Counter(
            "byflyt_siri_train_refs_total",
            "SIRI ET journeys named by train number and date (Bane NOR, e.g. 3520:2018-08-28), "
            "by how they resolved to the static trips of that day: resolved, unknown_train, "
            "train_not_running, no_service_date.",
            ["source", "outcome"],
            registry=registry,
        )
        self.siri_rate_wait = Counter(
            "byflyt_siri_rate_limit_wait_seconds_total",
            "Seconds a SIRI connector waited for its request token bucket (Entur: 4/min).",
            ["source"],
            registry=registry,
        )
        self.siri_local_times = Counter(
            "byflyt_siri_local_time_answers_total",
            "SIRI answers (pages) with timestamps without a UTC offset, read as Europe/Oslo "
            "local time.",
            ["source", "kind"],
            registry=registry,
        )
        self.platform_changes = Counter(
            "byflyt_platform_changes_total",
            "Calls served at another quay (platform) of the planned stop place (NSR StopPlace, "
            "GTFS parent_station) than the static plan has, by feed and connector (SIRI: once "
            "per call; GTFS-realtime: per snapshot that reports it).",
            ["feed", "connector"],
            registry=registry,
        )
        self.added_trips = Counter(
            "byflyt_gtfs_rt_added_trips_total",
            "GTFS-realtime ADDED trips unknown to the static feed that were accepted, by where "
            "their mode came from (route, stops, feed_default, unknown).",
            ["source", "mode_from"],
            registry=registry,
        )
        self.gtfs_rule_violations = Counter(
            "byflyt_gtfs_static_violations_total",
            "Rows of a static GTFS feed that broke a validation rule at `byflyt gtfs load`, by "
            "feed and rule (duplicate_stop_time, unknown_trip, times_backwards, ...).",
            ["feed", "rule"],
            registry=registry,
        )
        # -- rejected input --------------------------------------------------------------------
        self.rejected = Counter(
            "byflyt_rejected_total",
            "Records sent to the dead-letter topic, by source, stage and reason code.",
            ["source", "stage", "reason"],
            registry=registry,
        )
        # -- agents ----------------------------------------------------------------------------
        self.agent_records = Counter(
            "byflyt_agent_records_total",
            "Records an agent consumed (in) or produced (out).",
            ["agent", "direction"],
            registry=registry,
        )
        self.processing_seconds = Histogram(
            "byflyt_processing_seconds",
            "Seconds an agent spent on one batch of records.",
            ["agent"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )
        self.observations = Counter(
            "byflyt_observations_total",
            "Count observations aggregated, by mode and kommune.",
            ["mode", "kommune"],
            registry=registry,
        )
        self.volume = Gauge(
            "byflyt_volume",
            "Hourly volume per kommune and mode for the current and previous hour.",
            ["kommune", "mode", "metric", "hour"],
            registry=registry,
        )
        self.stop_calls = Counter(
            "byflyt_stop_calls_total",
            "Final transit stop calls aggregated, by mode, kommune and status (served, cancelled, "
            "skipped).",
            ["mode", "kommune", "status"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "byflyt_consumer_lag_records",
            "Records between a partition's end and the worker group's committed offset, for the "
            "partitions this worker holds.",
            ["topic", "partition"],
            registry=registry,
        )
        # -- store -----------------------------------------------------------------------------
        self.store_writes = Counter(
            "byflyt_store_writes_total",
            "Rows upserted into (or deleted from) the SQL store, by table.",
            ["table"],
            registry=registry,
        )
        self.store_failures = Counter(
            "byflyt_store_failures_total",
            'Failed store transactions by table, and failed reads (table "(read)").',
            ["table"],
            registry=registry,
        )

    def set_sensor_state(self, source: str, point: str, kommune: str, state: str) -> None:
        """Mark ``state`` as the current one of a point (for a feed, ``point`` is its kind)."""
        if state not in SENSOR_STATES:
            raise ValueError(f"unknown sensor state {state!r}; expected one of {SENSOR_STATES}")
        for known in SENSOR_STATES:
            self.sensor_status.labels(source, point, kommune, known).set(int(known == state))


_default: Metrics | None = None


def default_metrics() -> Metrics:
    """The process-wide metrics on the default registry (created once)."""
    global _default
    if _default is None:
        _default = Metrics()
    return _default
