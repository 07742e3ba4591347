"""``byflyt gtfs …`` and ``byflyt stops …``: load a static GTFS feed, list stops it cannot place.

A loaded feed is saved under ``<BYFLYT_DATA_DIR>/gtfs/<feed>/`` so workers read it without the
zip (see :meth:`byflyt.models.gtfs.StaticFeed.save`).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated

import typer

from byflyt.errors import ConfigError, RetriableError
from byflyt.models.geo import KommuneLocator
from byflyt.models.gtfs import StaticFeed, feed_dir, feed_name, load_gtfs_with_settings
from byflyt.models.gtfs.checks import FeedReport
from byflyt.models.kommuner import get_region

gtfs_app = typer.Typer(
    help="Load static GTFS feeds: stops placed in kommuner, routes, trips, schedules.",
    no_args_is_help=True,
)
stops_app = typer.Typer(help="Inspect transit stops and their kommuner.", no_args_is_help=True)


FeedOpt = Annotated[
    str,
    typer.Option(
        "--feed",
        help="Feed name, e.g. inn (letters, digits, '.', '_', '-'; case does not matter).",
    ),
]


@gtfs_app.command("load")
def gtfs_load(
    feed: FeedOpt,
    source: Annotated[str, typer.Option("--zip", help="GTFS zip: a file path or an http(s) URL.")],
    region: Annotated[
        str | None,
        typer.Option("--region", help="Region key (default BYFLYT_REGION; unset: all of Norway)."),
    ] = None,
    all_norway: Annotated[
        bool, typer.Option("--all-norway", help="Keep every trip, ignoring BYFLYT_REGION.")
    ] = False,
    overrides: Annotated[
        Path | None,
        typer.Option("--overrides", help="CSV stop_id,kommune_nr that wins over the geometry."),
    ] = None,
    chunk_rows: Annotated[
        int, typer.Option("--chunk-rows", min=1, help="stop_times rows read at a time.")
    ] = 500_000,
) -> None:
    """Load a GTFS zip for a region, place its stops in kommuner and save it for the workers."""
    from .base import fail, settings_from

    settings = settings_from()
    region_key = None if all_norway else (region or settings.region)
    try:
        feed = feed_name(feed)
        target = feed_dir(settings, feed)
        chosen = get_region(region_key, settings.regions_file) if region_key else None
        locator = KommuneLocator.from_settings(settings, overrides=overrides)
        static = load_gtfs_with_settings(
            settings, source, feed=feed, region=chosen, locator=locator, chunk_rows=chunk_rows
        )
        static.save(target)
    except ConfigError as exc:
        fail(str(exc))
    except RetriableError as exc:
        fail(f"{exc} (a temporary failure: try again later)", code=1)
    unplaced = len(static.unknown_stops())
    span = static.date_range()
    typer.echo(f"feed {feed}: {chosen.name if chosen else 'all of Norway'}, from {source}")
    typer.echo(
        f"stops        {len(static.stops)} ({len(static.stops) - unplaced} placed, "
        f"{unplaced} unplaced)"
    )
    typer.echo(f"trips        {len(static.trips)} kept")
    typer.echo(f"stop_times   {len(static.stop_times)} kept")
    if span is None:
        typer.echo("service days none")
    else:
        dates = static.service_days["service_date"].nunique()
        typer.echo(f"service days {span[0]} – {span[1]} ({dates} dates)")
    typer.echo(f"saved to     {target}")
    report_checks(feed, static.report)
    if unplaced:
        typer.echo(f"list unplaced stops: byflyt stops unknown --feed {feed}")


def report_checks(feed: str, report: FeedReport) -> None:
    """Print the validation findings per rule and count them in the metrics."""
    from byflyt.metrics import default_metrics

    if not report.counts:
        typer.echo("checks       every GTFS rule passed")
        return
    typer.echo("checks       rows or trips dropped or flagged, per rule:")
    for line in report.lines():
        typer.echo(f"  {line}")
    for rule, count in report.counts.items():
        default_metrics().gtfs_rule_violations.labels(feed, rule).inc(count)


@stops_app.command("unknown")
def stops_unknown(feed: FeedOpt) -> None:
    """List the stops of a loaded feed that are in no kommune, as CSV: stop_id,stop_name,lat,lon."""
    from .base import fail, settings_from

    settings = settings_from()
    try:
        static = StaticFeed.load(feed_dir(settings, feed))
    except ConfigError as exc:
        fail(str(exc))
    buffer = io.StringIO()
    static.unknown_stops().to_csv(buffer, index=False, lineterminator="\n")
    typer.echo(buffer.getvalue(), nl=False)
