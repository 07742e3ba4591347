"""``byflyt transit sources``: the datasets (codespaces) whose trips serve a region.

Read from Entur's national static GTFS, given as a zip (``--zip``, read for the region only)
or as a feed loaded with ``byflyt gtfs load`` (``--feed``). CSV and JSON print exactly
:data:`~byflyt.queries.sources.FIELDS`; the days counted go to stderr so the CSV stays clean.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from byflyt.errors import ConfigError, RetriableError
from byflyt.queries.hourly import number
from byflyt.queries.sources import FIELDS, region_sources

from .base import fail, require_region, settings_from
from .options import RegionKeyOpt
from .render import Format, FormatOpt, print_table, write_csv, write_json

transit_app = typer.Typer(
    help="Transit across operators: which datasets serve a region.", no_args_is_help=True
)


@transit_app.command("sources")
def sources(
    region: RegionKeyOpt = None,
    source: Annotated[
        str | None,
        typer.Option("--zip", help="Entur's national GTFS zip (a path or an http(s) URL)."),
    ] = None,
    feed: Annotated[
        str | None,
        typer.Option("--feed", help="A static feed loaded with `byflyt gtfs load` instead."),
    ] = None,
    on: Annotated[
        str | None,
        typer.Option("--date", help="Count this day (YYYY-MM-DD); default: the feed's mean day."),
    ] = None,
    output: FormatOpt = Format.table,
) -> None:
    """List the codespaces whose trips call in the region: mode, real-time dataset, volume a day.

    Rail's real-time dataset is BNR (Bane NOR publishes every passenger train): ingest it with
    `byflyt ingest siri-et --dataset BNR --feed FEED`.
    """
    from byflyt.models.geo import KommuneLocator
    from byflyt.models.gtfs import StaticFeed, feed_dir, load_gtfs_with_settings
    from byflyt.models.kommuner import get_region

    settings = settings_from()
    key = require_region(settings, region)
    if (source is None) == (feed is None):
        fail("configuration error: --zip / --feed: give exactly one of them")
    try:
        chosen = get_region(key, settings.regions_file)
        day = _day(on)
        if source is not None:
            locator = KommuneLocator.from_settings(settings)
            static = load_gtfs_with_settings(
                settings, source, feed="sources", region=chosen, locator=locator
            )
        else:
            assert feed is not None
            static = StaticFeed.load(feed_dir(settings, feed))
            if static.region not in (None, chosen.key):
                typer.echo(
                    f"byflyt: note: feed {static.feed!r} was loaded for region {static.region!r}, "
                    f"not {chosen.key!r}: trips that do not call there are missing",
                    err=True,
                )
    except ConfigError as exc:
        fail(f"configuration error: {exc}")
    except RetriableError as exc:
        fail(f"{exc} (a temporary failure: try again later)", code=1)
    rows, days = region_sources(static, chosen, on=day)
    records = [row.record() for row in rows]
    if days is not None:
        span = f"{days[0]}" if days[0] == days[1] else f"the mean of {days[0]} – {days[1]}"
        typer.echo(f"{chosen.name}: a day is {span}", err=True)
    if output is Format.csv:
        write_csv(FIELDS, records)
    elif output is Format.json:
        write_json(records)
    else:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False)
        for name in FIELDS:
            table.add_column(name, justify="left" if name in FIELDS[:3] else "right")
        for record in records:
            table.add_row(
                *(
                    str(number(v)) if isinstance(v, float) else str(v)
                    for v in (record[f] for f in FIELDS)
                )
            )
        print_table(table)
    if not records:
        fail(f"no dataset of the feed calls in {chosen.name}", code=1)


def _day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError("--date", f"{text!r} is not a date", "write YYYY-MM-DD") from None
