"""``byflyt ingest …``: run a connector (backfill a range or follow a source live)."""

from __future__ import annotations

import typer

ingest_app = typer.Typer(help="Run a connector: poll a source into Kafka.", no_args_is_help=True)
