"""``byflyt ingest …``: run a connector (backfill a range or follow a source live)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer

from byflyt.clock import TIME_FIX, parse_when
from byflyt.errors import ConfigError

if TYPE_CHECKING:
    from byflyt.connectors.base import Connector, RunStats, Window
    from byflyt.settings import Settings

ingest_app = typer.Typer(help="Run a connector: poll a source into Kafka.", no_args_is_help=True)


@ingest_app.callback()
def _serve_metrics(
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=1,
            max=65535,
            help="Serve the connector's /metrics on this port (default BYFLYT_METRICS_PORT).",
        ),
    ] = None,
) -> None:
    """Start the connector's /metrics endpoint (on BYFLYT_WEB_HOST) when a port is given."""
    from prometheus_client import start_http_server

    from byflyt.metrics import default_metrics

    from .base import fail, settings_from

    settings = settings_from()
    port = metrics_port or settings.metrics_port
    if port is None:
        return
    try:
        start_http_server(port, addr=settings.web_host, registry=default_metrics().registry)
    except OSError as exc:
        fail(
            f"configuration error: BYFLYT_METRICS_PORT / --metrics-port {port}: cannot listen on "
            f"{settings.web_host}:{port} ({exc.strerror}); choose a free port"
        )


def parse_time(option: str, text: str | None) -> datetime | None:
    """A ``--from``/``--to`` value (:func:`byflyt.clock.parse_when`); an error names ``option``."""
    if text is None:
        return None
    try:
        return parse_when(text)
    except ValueError as exc:
        raise ConfigError(option, str(exc), TIME_FIX) from None


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
    from byflyt.connectors.trafikkdata import DEFAULT_ENDPOINT, TrafikkdataConnector

    from .base import fail, settings_from

    settings = settings_from()
    region = region or settings.region
    if not region:
        fail("--region is missing: give e.g. --region mjosbyen, or set BYFLYT_REGION")
    try:
        start, backfill = _backfill(from_, to)
        connector = TrafikkdataConnector(
            settings,
            region=region,
            endpoint=endpoint or DEFAULT_ENDPOINT,
            backfill=backfill,
            start=start,
        )
    except ConfigError as exc:
        fail(f"configuration error: {exc}")
    _run_counter(
        connector, settings, once or backfill is not None, interval, f"trafikkdata {region}"
    )


def _backfill(from_: str | None, to: str | None) -> tuple[datetime | None, Window | None]:
    """``--from``/``--to`` as a start and, with both, a backfill window (ConfigError if wrong)."""
    from byflyt.connectors.base import Window

    start, end = parse_time("--from", from_), parse_time("--to", to)
    if end is None:
        return start, None
    if start is None:
        raise ConfigError("--to", "needs --from", "give both to backfill a range")
    if end <= start:
        raise ConfigError("--to", f"{to} is not after --from {from_}", "swap them")
    return start, Window(start, end)


def _run_counter(
    connector: Connector[Any], settings: Settings, once: bool, interval: float, label: str
) -> None:
    """Run a counter connector once or live, then print its summary line."""
    from byflyt.connectors.base import ConnectorRunner
    from byflyt.errors import BrokerError
    from byflyt.kafka import create_topics
    from byflyt.topics import BIKE_COUNTS, BIKE_POINTS

    from .base import fail

    with connector:
        try:
            create_topics(settings)
            runner = ConnectorRunner(connector, settings)
            stats = runner.run(once=once, interval=timedelta(minutes=interval))
        except BrokerError as exc:
            fail(str(exc), code=1)
    typer.echo(
        f"{label}: {stats.produced[BIKE_POINTS.name]} points, "
        f"{stats.produced[BIKE_COUNTS.name]} observations "
        f"({stats.counts['missing_hours']} missing hours), {stats.rejected} rejected, "
        f"{len(stats.failed)} failed"
    )
    if once and stats.failed:
        fail(f"incomplete: {', '.join(stats.failed)} failed (see the log above)", code=1)


@ingest_app.command("eco-counter")
def eco_counter(
    region: RegionOpt = None,
    api: Annotated[
        str | None,
        typer.Option(
            "--api", help="v1 (OAuth2) or v2 (X-API-KEY); default BYFLYT_ECO_COUNTER_API."
        ),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option("--endpoint", help="API base URL (the token URL is <base>/token)."),
    ] = None,
    from_: FromOpt = None,
    to: ToOpt = None,
    once: OnceOpt = False,
    interval: IntervalOpt = 60.0,
) -> None:
    """Bicycle and pedestrian counts from Eco-Counter (Eco-Visio) API v1 or v2.

    Credentials: BYFLYT_ECO_COUNTER_CLIENT_ID and _CLIENT_SECRET (v1) or _API_KEY (v2).
    """
    from byflyt.connectors.eco_counter import EcoCounterConnector

    from .base import fail, settings_from

    settings = settings_from()
    region = region or settings.region
    if not region:
        fail("--region is missing: give e.g. --region mjosbyen, or set BYFLYT_REGION")
    if api not in (None, "v1", "v2"):
        fail(f"configuration error: --api: {api!r} is not v1 or v2 (fix: give --api v1 or v2)")
    try:
        start, backfill = _backfill(from_, to)
        connector = EcoCounterConnector(
            settings,
            region=region,
            api="v2" if api == "v2" else "v1" if api == "v1" else None,
            endpoint=endpoint,
            backfill=backfill,
            start=start,
        )
    except ConfigError as exc:
        fail(f"configuration error: {exc}")
    label = f"eco-counter {connector.api} {region}"
    _run_counter(connector, settings, once or backfill is not None, interval, label)


@ingest_app.command("telraam")
def telraam(
    segments: Annotated[
        str | None, typer.Option("--segments", help="Segment ids, comma-separated.")
    ] = None,
    region: Annotated[
        str | None,
        typer.Option("--region", help="Every segment in this region (instead of --segments)."),
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="API base URL (default Telraam's).")
    ] = None,
    from_: FromOpt = None,
    to: ToOpt = None,
    once: OnceOpt = False,
    interval: IntervalOpt = 60.0,
) -> None:
    """Measured bicycle and pedestrian counts from Telraam segments (BYFLYT_TELRAAM_API_KEY)."""
    from byflyt.connectors.telraam import DEFAULT_ENDPOINT, TelraamConnector

    from .base import fail, settings_from

    settings = settings_from()
    if segments and region:
        fail("configuration error: --segments and --region exclude each other (fix: give one)")
    ids = [s.strip() for s in segments.split(",") if s.strip()] if segments else None
    try:
        start, backfill = _backfill(from_, to)
        connector = TelraamConnector(
            settings,
            segments=ids,
            region=region,
            endpoint=endpoint or DEFAULT_ENDPOINT,
            backfill=backfill,
            start=start,
        )
    except ConfigError as exc:
        fail(f"configuration error: {exc}")
    label = f"telraam {region or segments}"
    _run_counter(connector, settings, once or backfill is not None, interval, label)


@ingest_app.command("gtfs-rt")
def gtfs_rt(
    feed: Annotated[
        str, typer.Option("--feed", help="Static feed loaded with `byflyt gtfs load`, e.g. inn.")
    ],
    trip_updates: Annotated[
        str | None, typer.Option("--trip-updates", help="GTFS-realtime TripUpdates URL.")
    ] = None,
    vehicle_positions: Annotated[
        str | None,
        typer.Option("--vehicle-positions", help="GTFS-realtime VehiclePositions URL."),
    ] = None,
    replay: Annotated[
        Path | None,
        typer.Option("--replay", help="Play recorded *.pb snapshots in name order, then exit."),
    ] = None,
    interval: Annotated[
        str, typer.Option("--interval", help="Time between polls: 10s, 1m or seconds.")
    ] = "10s",
    once: OnceOpt = False,
    polls: Annotated[
        int | None,
        typer.Option("--polls", min=1, help="Poll N times (replay: play the first N files)."),
    ] = None,
) -> None:
    """Trip updates and vehicle positions from a GTFS-realtime feed, resolved on its static feed.

    Live, it polls every --interval until stopped (--once: one poll); a replay plays every
    recorded file once. Checkpoints in Kafka keep the last accepted snapshot time per kind.
    """
    from byflyt.connectors.gtfs_rt import GtfsRtConnector, check_sources
    from byflyt.connectors.snapshots import SnapshotRunner
    from byflyt.models.gtfs import StaticFeed, feed_dir

    from .base import fail, settings_from

    settings = settings_from()
    try:
        every = _poll_interval(interval, once, polls)
        check_sources(trip_updates, vehicle_positions, replay)
        connector = GtfsRtConnector(
            settings,
            static=StaticFeed.load(feed_dir(settings, feed)),
            trip_updates=trip_updates,
            vehicle_positions=vehicle_positions,
            replay=replay,
            polls=1 if once else polls,
            interval=every,
        )
    except ConfigError as exc:
        fail(f"configuration error: {exc}")
    with connector:
        stats = _run_feed(SnapshotRunner(connector, settings), settings, replay, once, polls, every)
    counts = stats.counts
    typer.echo(
        f"gtfs-rt {feed}: {counts['snapshots']} snapshots ({counts['repeated']} repeated, "
        f"{counts['not_modified']} not modified), {counts['trip_states']} trip states "
        f"({counts['vanished']} vanished), {counts['vehicles']} vehicles, "
        f"{stats.rejected} rejected, {len(stats.failed)} failed"
    )
    _fail_if_incomplete(stats, bounded=once or polls is not None or replay is not None)


DatasetOpt = Annotated[
    str,
    typer.Option(
        "--dataset", help="Entur dataset, e.g. INN (Innlandstrafikk) or BNR (Bane NOR: trains)."
    ),
]
SiriEndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint", help="SIRI REST base (default https://api.entur.io/realtime/v1/rest)."
    ),
]
SiriIntervalOpt = Annotated[
    str, typer.Option("--interval", help="Time between polls: 15s, 1m or seconds.")
]
SiriPollsOpt = Annotated[
    int | None,
    typer.Option("--polls", min=1, help="Poll N times, each with its MoreData pages."),
]
SiriReplayOpt = Annotated[
    Path | None,
    typer.Option("--replay", help="Play recorded *.xml answers in name order, then exit."),
]
SiriRateOpt = Annotated[
    float,
    typer.Option(
        "--requests-per-minute",
        min=0.001,
        help="Request budget (token bucket); Entur allows 4 a minute per client.",
    ),
]
SiriFeedOpt = Annotated[
    str | None,
    typer.Option(
        "--feed", help="Static GTFS feed of the codespace (default: the dataset; any case)."
    ),
]


@ingest_app.command("siri-et")
def siri_et(
    dataset: DatasetOpt,
    endpoint: SiriEndpointOpt = None,
    interval: SiriIntervalOpt = "15s",
    once: OnceOpt = False,
    polls: SiriPollsOpt = None,
    replay: SiriReplayOpt = None,
    feed: SiriFeedOpt = None,
    requests_per_minute: SiriRateOpt = 4.0,
) -> None:
    """Trip states from Entur's SIRI Estimated Timetable (ET), e.g. Innlandstrafikk (INN).

    Quays are placed in kommuner through the static feed loaded with `byflyt gtfs load`. Bane
    NOR's trains (BNR), named by train number and date, resolve to that feed's rail trips by
    trip_short_name: load Entur's national GTFS for it.
    """
    _siri("et", dataset, endpoint, interval, once, polls, replay, feed, requests_per_minute)


@ingest_app.command("siri-vm")
def siri_vm(
    dataset: DatasetOpt,
    endpoint: SiriEndpointOpt = None,
    interval: SiriIntervalOpt = "15s",
    once: OnceOpt = False,
    polls: SiriPollsOpt = None,
    replay: SiriReplayOpt = None,
    feed: SiriFeedOpt = None,
    requests_per_minute: SiriRateOpt = 4.0,
) -> None:
    """Vehicles from Entur's SIRI Vehicle Monitoring (VM), placed in kommuner."""
    _siri("vm", dataset, endpoint, interval, once, polls, replay, feed, requests_per_minute)


def _siri(
    kind: str,
    dataset: str,
    endpoint: str | None,
    interval: str,
    once: bool,
    polls: int | None,
    replay: Path | None,
    feed: str | None,
    requests_per_minute: float,
) -> None:
    from byflyt.connectors.siri import DEFAULT_ENDPOINT, SiriConnector
    from byflyt.connectors.snapshots import SnapshotRunner
    from byflyt.models.gtfs import StaticFeed, feed_dir

    from .base import fail, settings_from

    settings = settings_from()
    try:
        every = _poll_interval(interval, once, polls)
        static = StaticFeed.load(feed_dir(settings, feed or dataset))
        connector = SiriConnector(
            settings,
            kind="et" if kind == "et" else "vm",
            dataset=dataset,
            static=static,
            endpoint=None if replay is not None else endpoint or DEFAULT_ENDPOINT,
            replay=replay,
            polls=1 if once else polls,
            rate_per_minute=requests_per_minute,
        )
    except ConfigError as exc:
        fail(f"configuration error: {exc}")
    with connector:
        stats = _run_feed(SnapshotRunner(connector, settings), settings, replay, once, polls, every)
    counts = stats.counts
    typer.echo(
        f"siri-{kind} {dataset}: {counts['answers']} answers ({counts['pages']} requests "
        f"with pages), {counts['trip_states']} trip states, {counts['vehicles']} vehicles, "
        f"{counts['error_conditions']} error conditions, {stats.rejected} rejected, "
        f"{len(stats.failed)} failed"
    )
    _fail_if_incomplete(stats, bounded=once or polls is not None or replay is not None)


class _PollingRunner(Protocol):
    def run(self, *, once: bool = False, interval: timedelta = ...) -> RunStats: ...

    def run_polls(self, polls: int | None, interval: timedelta) -> RunStats: ...


def _poll_interval(interval: str, once: bool, polls: int | None) -> timedelta:
    """``--interval`` as a duration; ``--once`` and ``--polls`` exclude each other (ConfigError)."""
    from byflyt.connectors.snapshots import parse_interval

    if once and polls is not None:
        raise ConfigError("--polls", "cannot go with --once", "give one of them")
    return parse_interval(interval)


def _run_feed(
    runner: _PollingRunner,
    settings: Settings,
    replay: Path | None,
    once: bool,
    polls: int | None,
    every: timedelta,
) -> RunStats:
    """A transit feed's run: a replay in one pass, else ``polls`` polls (``--once``: one)."""
    from byflyt.errors import BrokerError
    from byflyt.kafka import create_topics

    from .base import fail

    try:
        create_topics(settings)
        if replay is not None:  # every recorded file (or the first --polls) in one pass
            return runner.run(once=True)
        return runner.run_polls(1 if once else polls, every)
    except BrokerError as exc:
        fail(str(exc), code=1)


def _fail_if_incomplete(stats: RunStats, *, bounded: bool) -> None:
    """A bounded run (once, --polls, a replay) with failed sources ends with exit code 1."""
    from .base import fail

    if bounded and stats.failed:
        fail(f"incomplete: {', '.join(stats.failed)} failed (see the log above)", code=1)
