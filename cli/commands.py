"""The ``byflyt`` command line: one entry point for brokers, workers, connectors and queries."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from byflyt.broker import LocalBroker
from byflyt.errors import BrokerError, ByflytError, ConfigError
from byflyt.settings import Settings

from .base import fail, settings_from
from .counts import import_app
from .gtfs import gtfs_app, stops_app
from .index import index
from .ingest import ingest_app
from .outages import outages
from .query import query_app
from .regions import regions_app
from .report import report
from .serve import serve
from .transit import transit_app

app = typer.Typer(
    name="byflyt",
    help="Hourly cycling and transit volumes per kommune, from live mobility feeds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
broker_app = typer.Typer(
    help="Run the embedded single-node Kafka (KRaft) broker.", no_args_is_help=True
)
topics_app = typer.Typer(help="Create and inspect byflyt's Kafka topics.", no_args_is_help=True)
app.add_typer(broker_app, name="broker")
app.add_typer(topics_app, name="topics")
app.add_typer(ingest_app, name="ingest")
app.add_typer(import_app, name="import")
app.add_typer(gtfs_app, name="gtfs")
app.add_typer(stops_app, name="stops")
app.add_typer(query_app, name="query")
app.add_typer(regions_app, name="regions")
app.add_typer(transit_app, name="transit")
app.command("index")(index)
app.command("serve")(serve)
app.command("outages")(outages)
app.command("report")(report)


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        # kafka-python logs every refused connection while a broker starts; that is expected.
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
    # Settings are validated up front so every command fails the same way on bad config.
    settings_from()


# -- broker ----------------------------------------------------------------------------------
PortOpt = Annotated[int | None, typer.Option("--port", help="Client port (default 9092).")]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Broker storage folder (default <BYFLYT_DATA_DIR>/broker)."),
]


def _local_broker(
    port: int | None, data_dir: Path | None, *, secure: bool = False
) -> tuple[Settings, LocalBroker]:
    from byflyt.broker_security import client_credentials

    settings = settings_from(broker_port=port)
    broker_dir = data_dir.resolve() if data_dir else settings.broker_dir
    credentials = (
        client_credentials(broker_dir, settings.kafka_sasl_username, settings.kafka_sasl_password)
        if secure
        else None
    )
    broker = LocalBroker(
        broker_dir, settings.kafka_libs_dir, settings.broker_port, secure=credentials
    )
    return settings, broker


@broker_app.command("start")
def broker_start(
    port: PortOpt = None,
    data_dir: DataDirOpt = None,
    secure: Annotated[
        bool,
        typer.Option(
            "--secure",
            help="SASL_SSL with SCRAM-SHA-512 and a CA of its own; client settings in "
            "DIR/client.env (user and password: BYFLYT_KAFKA_SASL_USERNAME/_PASSWORD, else new).",
        ),
    ] = False,
) -> None:
    """Start the local broker in the background; returns once it answers."""
    settings, broker = _local_broker(port, data_dir, secure=secure)
    if not settings.uses_local_broker:
        fail(
            f"BYFLYT_KAFKA_BOOTSTRAP is set ({settings.kafka_bootstrap}): nothing local to start; "
            "unset it to use the embedded broker"
        )
    try:
        status = broker.start()
    except BrokerError as exc:
        fail(str(exc), code=1)
    typer.echo(status.describe())


@broker_app.command("stop")
def broker_stop(port: PortOpt = None, data_dir: DataDirOpt = None) -> None:
    """Stop the local broker and wait until its port is closed."""
    _, broker = _local_broker(port, data_dir)
    typer.echo(broker.stop().describe())


@broker_app.command("status")
def broker_status(port: PortOpt = None, data_dir: DataDirOpt = None) -> None:
    """Say whether the local broker runs, and where."""
    _, broker = _local_broker(port, data_dir)
    status = broker.status()
    typer.echo(status.describe())
    if not status.running:
        raise typer.Exit(3)


# -- topics ----------------------------------------------------------------------------------
@topics_app.command("create")
def topics_create() -> None:
    """Create byflyt's topics (partitions, compaction); existing topics are left as they are."""
    from byflyt.kafka import create_topics

    settings = settings_from()
    try:
        result = create_topics(settings)
    except BrokerError as exc:
        fail(str(exc), code=1)
    for name, what in sorted(result.items()):
        typer.echo(f"{what:8} {name}")


@topics_app.command("list")
def topics_list() -> None:
    """List byflyt's topics with their key, value shape and cleanup policy."""
    from byflyt.topics import ALL_TOPICS

    settings = settings_from()
    for spec in ALL_TOPICS:
        policy = "compact" if spec.compacted else "delete"
        typer.echo(f"{settings.topic(spec.name):28} {policy:8} key={spec.key} value={spec.value}")


# -- worker ----------------------------------------------------------------------------------
@app.command("worker")
def worker(
    drain: Annotated[
        bool, typer.Option("--drain", help="Process what is in the topics now, then exit 0.")
    ] = False,
    web_port: Annotated[
        int | None, typer.Option("--web-port", help="Port of the worker's web server.")
    ] = None,
    loglevel: Annotated[str, typer.Option("--loglevel", help="faust log level.")] = "warning",
) -> None:
    """Run the stream-processing worker (faust) of every pipeline."""
    from byflyt.kafka import create_topics_waiting
    from byflyt.streams.pipelines import registrars
    from byflyt.streams.state_check import StateLostError
    from byflyt.streams.worker import run_worker

    settings = settings_from()
    try:
        create_topics_waiting(settings)
    except BrokerError as exc:
        fail(str(exc), code=1)
    try:
        run_worker(settings, registrars(), drain=drain, web_port=web_port, loglevel=loglevel)
    except (BrokerError, StateLostError) as exc:
        fail(str(exc), code=1)


@app.command("demo")
def demo(
    keep_broker: Annotated[
        bool, typer.Option("--keep-broker", help="Leave the local broker running afterwards.")
    ] = False,
    exit_after_report: Annotated[
        bool,
        typer.Option(
            "--exit-after-report",
            help="Stop once the report is written instead of serving /metrics and the live page.",
        ),
    ] = False,
) -> None:
    """Run byflyt end to end on synthetic Mjøsbyen data: counts, transit, report, live page."""
    from .demo import run_demo

    try:
        run_demo(settings_from(), keep_broker=keep_broker, serve=not exit_after_report)
    except (BrokerError, ByflytError) as exc:
        fail(str(exc), code=1)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except ConfigError as exc:
        typer.echo(f"byflyt: configuration error: {exc}", err=True)
        sys.exit(2)
