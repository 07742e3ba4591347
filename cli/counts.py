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
    from byflyt.connectors.csv_counts import CsvCountsConnector

    from .base import fail, fail_if_incomplete, run_connector, settings_from

    settings = settings_from()
    try:
        connector = CsvCountsConnector(settings, file, source=source, mapping=mapping)
    except ConfigError as exc:
        fail(f"configuration error: {exc}")
    stats = run_connector(connector, settings, once=True)
    typer.echo(
        f"import counts {file.name} ({source}): {stats.counts['rows']} rows, "
        f"{stats.counts['points']} points, {stats.counts['observations']} hourly observations, "
        f"{stats.rejected} rejected"
    )
    fail_if_incomplete(stats)
