"""What every command module shares: one-line failures, settings loaded, connectors run.

A connector runs the same way from every command: topics first, a broker error as one line, exit
code 1 when a bounded run is incomplete.

The command modules (``byflyt.cli.query``, ``.ingest`` …) import from here, and
``byflyt.cli.commands`` imports them, so imports run one way: commands → command modules → base.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from byflyt.errors import ConfigError
from byflyt.settings import Settings, load_settings

if TYPE_CHECKING:
    from byflyt.connectors.base import Connector, RunStats


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one line on stderr and exit."""
    typer.echo(f"byflyt: {message}", err=True)
    raise typer.Exit(code)


def settings_from(**overrides: object) -> Settings:
    """Load settings (environment, .env, then ``overrides``), failing with one line if wrong."""
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        fail(f"configuration error: {exc}")


def require_region(settings: Settings, region: str | None) -> str:
    """``--region``, else ``BYFLYT_REGION``; neither ends the command with one line."""
    key = region or settings.region
    if not key:
        fail("--region is missing: give e.g. --region mjosbyen, or set BYFLYT_REGION")
    return key


def run_connector(
    connector: Connector[Any],
    settings: Settings,
    *,
    once: bool,
    interval: timedelta = timedelta(minutes=15),
) -> RunStats:
    """Create the topics, then run ``connector`` once or every ``interval`` until stopped."""
    from byflyt.connectors.base import ConnectorRunner
    from byflyt.errors import BrokerError
    from byflyt.kafka import create_topics

    with connector:
        try:
            create_topics(settings)
            return ConnectorRunner(connector, settings).run(once=once, interval=interval)
        except BrokerError as exc:
            fail(str(exc), code=1)


def fail_if_incomplete(stats: RunStats, *, bounded: bool = True) -> None:
    """A bounded run (once, a file, --polls, a replay) with failed sources ends with exit code 1."""
    if bounded and stats.failed:
        fail(f"incomplete: {', '.join(stats.failed)} failed (see the log above)", code=1)
