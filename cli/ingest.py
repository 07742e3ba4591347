"""``byflyt ingest …``: run a connector (backfill a range or follow a source live)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

import typer

from byflyt.clock import TIME_FIX, parse_when
from byflyt.errors import ConfigError
from byflyt.settings import Settings

from .options import RegionKeyOpt

if TYPE_CHECKING:
    from byflyt.connectors.base import Connector, Window
    from byflyt.connectors.eco_counter_sites import Api
    from byflyt.connectors.snapshots import SnapshotConnector

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


_Counter: TypeAlias = "tuple[Callable[..., Connector[Any]], str]"
"""What a counter command's function returns: the connector factory and the summary label."""
_MakeCounter: TypeAlias = Callable[..., _Counter]


def _counter_command(name: str, interval: float) -> Callable[[_MakeCounter], _MakeCounter]:
    """Add ``ingest <name>``: the decorated function's options, then the window options.

    The function takes the settings and its own options and returns the connector factory
    (``connect(start=…, backfill=…)``) and the label of the summary line. ``--from``, ``--to``,
    ``--once`` and ``--interval`` (``interval`` minutes by default) are declared here, once for
    every counter source, and handed to :func:`_run_counter`.
    """

    def register(make: _MakeCounter) -> _MakeCounter:
        own = inspect.signature(make, eval_str=True).parameters.values()
        window = [
            inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=default)
            for key, kind, default in (
                ("from_", FromOpt, None),
                ("to", ToOpt, None),
                ("once", OnceOpt, False),
                ("interval", IntervalOpt, interval),
            )
        ]

        def command(**options: Any) -> None:
            from .base import settings_from

            run = {key: options.pop(key) for key in ("from_", "to", "once", "interval")}
            settings = settings_from()
            connect, label = make(settings, **options)
            _run_counter(settings, connect, label, **run)

        # typer reads a command's options from its signature: the source's own, then the window.
        mine = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own if p.name != "settings"]
        command.__signature__ = inspect.Signature([*mine, *window])  # type: ignore[attr-defined]
        command.__doc__ = make.__doc__
        command.__name__ = make.__name__
        ingest_app.command(name)(command)
        return make

    return register


@_counter_command("trafikkdata", interval=15.0)
def trafikkdata(
    settings: Settings,
    region: RegionKeyOpt = None,
    endpoint: Annotated[
        str | None,
        typer.Option("--endpoint", help="GraphQL URL (default: the Statens vegvesen API)."),
    ] = None,
) -> _Counter:
    """Bicycle counts from Statens vegvesen's Trafikkdata API (data © Statens vegvesen, NLOD).

    Without --to it follows live every --interval minutes, resuming from Kafka checkpoints.
    """
    from byflyt.connectors.trafikkdata import DEFAULT_ENDPOINT, TrafikkdataConnector

    from .base import require_region

    region = require_region(settings, region)
    url = endpoint or DEFAULT_ENDPOINT
    connect = partial(TrafikkdataConnector, settings, region=region, endpoint=url)
    return connect, f"trafikkdata {region}"


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
    settings: Settings,
    connect: Callable[..., Connector[Any]],
    label: str,
    from_: str | None,
    to: str | None,
    once: bool,
    interval: float,
) -> None:
    """Run a counter connector over ``--from``/``--to`` or live, then print its summary line.

    ``connect(start=…, backfill=…)`` makes the connector; a ConfigError ends with one line.
    """
    from byflyt.topics import BIKE_COUNTS, BIKE_POINTS

    from .base import fail, fail_if_incomplete, run_connector

    try:
        start, backfill = _backfill(from_, to)
        connector = connect(start=start, backfill=backfill)
    except ConfigError as exc:
        fail(f"configuration error: {exc}")
    bounded = once or backfill is not None
    stats = run_connector(connector, settings, once=bounded, interval=timedelta(minutes=interval))
    typer.echo(
        f"{label}: {stats.produced[BIKE_POINTS.name]} points, "
        f"{stats.produced[BIKE_COUNTS.name]} observations "
        f"({stats.counts['missing_hours']} missing hours), {stats.rejected} rejected, "
        f"{len(stats.failed)} failed"
    )
    fail_if_incomplete(stats, bounded=bounded)


@_counter_command("eco-counter", interval=60.0)
def eco_counter(
    settings: Settings,
    region: RegionKeyOpt = None,
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
) -> _Counter:
    """Bicycle and pedestrian counts from Eco-Counter (Eco-Visio) API v1 or v2.

    Credentials: BYFLYT_ECO_COUNTER_CLIENT_ID and _CLIENT_SECRET (v1) or _API_KEY (v2).
    """
    from byflyt.connectors.eco_counter import EcoCounterConnector

    from .base import fail, require_region

    region = require_region(settings, region)
    if api not in (None, "v1", "v2"):
        fail(f"configuration error: --api: {api!r} is not v1 or v2 (fix: give --api v1 or v2)")
    chosen: Api = "v2" if api == "v2" else "v1" if api == "v1" else settings.eco_counter_api
    connect = partial(EcoCounterConnector, settings, region=region, api=chosen, endpoint=endpoint)
    return connect, f"eco-counter {chosen} {region}"


@_counter_command("telraam", interval=60.0)
def telraam(
    settings: Settings,
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
) -> _Counter:
    """Measured bicycle and pedestrian counts from Telraam segments (BYFLYT_TELRAAM_API_KEY)."""
    from byflyt.connectors.telraam import DEFAULT_ENDPOINT, TelraamConnector

    from .base import fail

    if segments and region:
        fail("configuration error: --segments and --region exclude each other (fix: give one)")
    ids = [s.strip() for s in segments.split(",") if s.strip()] if segments else None
    url = endpoint or DEFAULT_ENDPOINT
    connect = partial(TelraamConnector, settings, segments=ids, region=region, endpoint=url)
    return connect, f"telraam {region or segments}"


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
    from byflyt.models.gtfs import StaticFeed, feed_dir

    from .base import settings_from

    settings = settings_from()

    def connect(every: timedelta) -> GtfsRtConnector:
        check_sources(trip_updates, vehicle_positions, replay)
        return GtfsRtConnector(
            settings,
            static=StaticFeed.load(feed_dir(settings, feed)),
            trip_updates=trip_updates,
            vehicle_positions=vehicle_positions,
            replay=replay,
            polls=1 if once else polls,
            interval=every,
        )

    _run_feed(settings, connect, f"gtfs-rt {feed}", GTFS_RT_COUNTS, interval, once, polls, replay)


GTFS_RT_COUNTS = (
    "{snapshots} snapshots ({repeated} repeated, {not_modified} not modified), "
    "{trip_states} trip states ({vanished} vanished), {vehicles} vehicles"
)
"""The counts in the summary line of ``ingest gtfs-rt``."""

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


def _siri_command(kind: str, doc: str) -> None:
    """Add ``ingest siri-<kind>``: both SIRI services take the same options."""

    def command(
        dataset: DatasetOpt,
        endpoint: SiriEndpointOpt = None,
        interval: SiriIntervalOpt = "15s",
        once: OnceOpt = False,
        polls: SiriPollsOpt = None,
        replay: SiriReplayOpt = None,
        feed: SiriFeedOpt = None,
        requests_per_minute: SiriRateOpt = 4.0,
    ) -> None:
        _siri(kind, dataset, endpoint, interval, once, polls, replay, feed, requests_per_minute)

    command.__doc__ = doc
    ingest_app.command(f"siri-{kind}")(command)


_siri_command(
    "et",
    """Trip states from Entur's SIRI Estimated Timetable (ET), e.g. Innlandstrafikk (INN).

    Quays are placed in kommuner through the static feed loaded with `byflyt gtfs load`. Bane
    NOR's trains (BNR), named by train number and date, resolve to that feed's rail trips by
    trip_short_name: load Entur's national GTFS for it.
    """,
)
_siri_command("vm", """Vehicles from Entur's SIRI Vehicle Monitoring (VM), placed in kommuner.""")


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
    from byflyt.models.gtfs import StaticFeed, feed_dir

    from .base import settings_from

    settings = settings_from()

    def connect(_every: timedelta) -> SiriConnector:
        return SiriConnector(
            settings,
            kind="et" if kind == "et" else "vm",
            dataset=dataset,
            static=StaticFeed.load(feed_dir(settings, feed or dataset)),
            endpoint=None if replay is not None else endpoint or DEFAULT_ENDPOINT,
            replay=replay,
            polls=1 if once else polls,
            rate_per_minute=requests_per_minute,
        )

    _run_feed(
        settings, connect, f"siri-{kind} {dataset}", SIRI_COUNTS, interval, once, polls, replay
    )


SIRI_COUNTS = (
    "{answers} answers ({pages} requests with pages), {trip_states} trip states, "
    "{vehicles} vehicles, {error_conditions} error conditions"
)
"""The counts in the summary line of ``ingest siri-et`` and ``siri-vm``."""


def _poll_interval(interval: str, once: bool, polls: int | None) -> timedelta:
    """``--interval`` as a duration; ``--once`` and ``--polls`` exclude each other (ConfigError)."""
    from byflyt.connectors.snapshots import parse_interval

    if once and polls is not None:
        raise ConfigError("--polls", "cannot go with --once", "give one of them")
    return parse_interval(interval)


def _run_feed(
    settings: Settings,
    connect: Callable[[timedelta], SnapshotConnector[Any]],
    label: str,
    counts: str,
    interval: str,
    once: bool,
    polls: int | None,
    replay: Path | None,
) -> None:
    """A transit feed's run: a replay in one pass, else ``polls`` polls (``--once``: one).

    ``connect`` makes the connector for the poll interval (a ConfigError ends with one line).
    Prints ``label`` and the run's ``counts`` (a template of count names), what was rejected
    and what failed; a bounded run
    (``--once``, ``--polls``, a replay) with failed sources ends with exit code 1.
    """
    from byflyt.connectors.snapshots import SnapshotRunner
    from byflyt.errors import BrokerError
    from byflyt.kafka import create_topics

    from .base import fail, fail_if_incomplete

    try:
        every = _poll_interval(interval, once, polls)
        connector = connect(every)
    except ConfigError as exc:
        fail(f"configuration error: {exc}")
    with connector:
        runner = SnapshotRunner(connector, settings)
        try:
            create_topics(settings)
            if replay is not None:  # every recorded file (or the first --polls) in one pass
                stats = runner.run(once=True)
            else:
                stats = runner.run_polls(1 if once else polls, every)
        except BrokerError as exc:
            fail(str(exc), code=1)
    summary = counts.format_map(stats.counts)  # a count never reached reads 0 (a Counter)
    typer.echo(f"{label}: {summary}, {stats.rejected} rejected, {len(stats.failed)} failed")
    fail_if_incomplete(stats, bounded=once or polls is not None or replay is not None)
