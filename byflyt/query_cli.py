"""``byflyt query …``: read hourly aggregates from the store."""

from __future__ import annotations

import typer

query_app = typer.Typer(help="Query hourly aggregates from the store.", no_args_is_help=True)
