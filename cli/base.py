"""What every command module shares: one-line failures and settings loaded the same way.

The command modules (``byflyt.cli.query``, ``.ingest`` …) import from here, and
``byflyt.cli.commands`` imports them, so imports run one way: commands → command modules → base.
"""

from __future__ import annotations

from typing import NoReturn

import typer

from byflyt.errors import ConfigError
from byflyt.settings import Settings, load_settings


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
