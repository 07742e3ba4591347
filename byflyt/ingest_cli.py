"""``byflyt ingest …``: run a connector (backfill a range or follow a source live)."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from byflyt.errors import ConfigError

ingest_app = typer.Typer(help="Run a connector: poll a source into Kafka.", no_args_is_help=True)

OSLO = ZoneInfo("Europe/Oslo")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME_FIX = (
    "write YYYY-MM-DD (midnight Europe/Oslo) or ISO 8601 with an offset, "
    "e.g. 2025-10-26T02:00+01:00 or 2025-10-26T01:00Z"
)


def parse_time(option: str, text: str | None) -> datetime | None:
    """A ``--from``/``--to`` value: ISO 8601 with an offset, or a date (Europe/Oslo midnight).

    Naive times are refused: which 02:00 on the last Sunday of October would they mean?
    """
    if text is None:
        return None
    try:
        if _DATE.match(text):
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=OSLO)
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(option, f"{text!r} is not a date or a time", _TIME_FIX) from None
    if value.utcoffset() is None:
        raise ConfigError(
            option, f"{text!r} has no UTC offset (naive times are ambiguous)", _TIME_FIX
        )
    return value


RegionOpt = Annotated[
    str | None,
    typer.Option("--region", help="Region key, e.g. mjosbyen (default: BYFLYT_REGION)."),
]
FromOpt = Annotated[
    str | None,
    typer.Option("--from", help="Start: YYYY-MM-DD (Oslo midnight) or ISO 8601 with an offset."),
]
ToOpt = Annotated[
    str | None,
    typer.Option("--to", help="End (exclusive); with --from: backfill the range and exit."),
]
OnceOpt = Annotated[bool, typer.Option("--once", help="Poll once, then exit.")]
IntervalOpt = Annotated[
    float, typer.Option("--interval", min=0.1, help="Minutes between polls when following.")
]


@ingest_app.command("trafikkdata")
def trafikkdata(
    region: RegionOpt = None,
    endpoint: Annotated[
        str | None,
        typer.Option("--endpoint", help="GraphQL URL (default: the Statens vegvesen API)."),
    ] = None,
    from_: FromOpt = None,
    to: ToOpt = None,
    once: OnceOpt = False,
    interval: IntervalOpt = 15.0,
) -> None:
    """Bicycle counts from Statens vegvesen's Trafikkdata API (data © Statens vegvesen, NLOD).

    Without --to it follows live every --interval minutes, resuming from Kafka checkpoints.
    """
    from byflyt.cli import fail, settings_from
    from byflyt.connectors.base import ConnectorRunner, Window
    from byflyt.connectors.trafikkdata import DEFAULT_ENDPOINT, TrafikkdataConnector
    from byflyt.errors import BrokerError
    from byflyt.kafka import create_topics
    from byflyt.models.topics import BIKE_COUNTS, BIKE_POINTS

    settings = settings_from()
    region = region or settings.region
    if not region:
        fail("--region is missing: give e.g. --region mjosbyen, or set BYFLYT_REGION")
    try:
        start, end = parse_time("--from", from_), parse_time("--to", to)
        backfill = None
        if end is not None:
            if start is None:
                raise ConfigError("--to", "needs --from", "give both to backfill a range")
            if end <= start:
                raise ConfigError("--to", f"{to} is not after --from {from_}", "swap them")
            backfill = Window(start, end)
        connector = TrafikkdataConnector(
            settings,
            region=region,
            endpoint=endpoint or DEFAULT_ENDPOINT,
            backfill=backfill,
            start=start,
        )
    except ConfigError as exc:
        fail(f"configuration error: {exc}")
    with connector:
        once = once or backfill is not None
        try:
            create_topics(settings)
            runner = ConnectorRunner(connector, settings)
            stats = runner.run(once=once, interval=timedelta(minutes=interval))
        except BrokerError as exc:
            fail(str(exc), code=1)
    typer.echo(
        f"trafikkdata {region}: {stats.produced[BIKE_POINTS.name]} points, "
        f"{stats.produced[BIKE_COUNTS.name]} observations "
        f"({stats.counts['missing_hours']} missing hours), {stats.rejected} rejected, "
        f"{len(stats.failed)} failed"
    )
    if once and stats.failed:
        fail(f"incomplete: {', '.join(stats.failed)} failed (see the log above)", code=1)
