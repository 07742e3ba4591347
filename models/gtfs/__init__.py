"""Static GTFS as reference data: the schedule the real-time feeds are resolved against.

:mod:`~byflyt.models.gtfs.load` reads a feed's zip (Entur's shape), checks it
(:mod:`~byflyt.models.gtfs.checks`) and keeps a region's slice; :mod:`~byflyt.models.gtfs.feed`
is that slice (:class:`StaticFeed`), saved under ``<data_dir>/gtfs/<feed>`` and read back by the
connectors, the transit agents and the CLI.
"""

from byflyt.models.gtfs.checks import FeedReport, FeedUnusable
from byflyt.models.gtfs.feed import (
    StaticFeed,
    TripPlan,
    TripSchedule,
    feed_dir,
    feed_name,
    loaded_feeds,
)
from byflyt.models.gtfs.load import gtfs_seconds, load_gtfs, load_gtfs_with_settings

__all__ = [
    "FeedReport",
    "FeedUnusable",
    "StaticFeed",
    "TripPlan",
    "TripSchedule",
    "feed_dir",
    "feed_name",
    "gtfs_seconds",
    "load_gtfs",
    "load_gtfs_with_settings",
    "loaded_feeds",
]
