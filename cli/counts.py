"""``byflyt import counts FILE.csv``: manual or exported counts into the hourly model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from byflyt.errors import ConfigError

import_app = typer.Typer(help="Import counts from files.", no_args_is_help=True)


@import_app.command("counts")
def counts(
    file: Annotated[
        Path, typer.Argument(help="CSV: point_id;name;lat;lon;kommune_nr;start;end;mode;count")
    ],
    source: Annotated[
        str, typer.Option("--source", help="Name of the source, e.g. hamar-manuell.")
    ],
    mapping: Annotated[
        Path | None, typer.Option("--mapping", help="TOML renaming columns ([columns], [modes]).")
    ] = None,
) -> None:
    """Counts per point and interval (up to an hour) into bike.counts; bad rows dead-lettered."""
    from byflyt.connectors.base import ConnectorRunner
    from byflyt.connectors.csv_counts import CsvCountsConnector
    from byflyt.errors import BrokerError
    from byflyt.kafka import create_topics

    from .base import fail, settings_from

    settings = settings_from()
    try:
        connector = CsvCountsConnector(settings, file, source=source, mapping=mapping)
    except ConfigError as exc:
        fail(f"configuration error: {exc}")
    with connector:
        try:
            create_topics(settings)
            stats = ConnectorRunner(connector, settings).run(once=True)
        except BrokerError as exc:
            fail(str(exc), code=1)
    typer.echo(
        f"import counts {file.name} ({source}): {stats.counts['rows']} rows, "
        f"{stats.counts['points']} points, {stats.counts['observations']} hourly observations, "
        f"{stats.rejected} rejected"
    )
    if stats.failed:
        fail(f"incomplete: {', '.join(stats.failed)} failed (see the log above)", code=1)
