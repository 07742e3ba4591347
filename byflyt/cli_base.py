"""What every command module shares: one-line failures and settings loaded the same way.

The command modules (``*_cli.py``) import from here, and ``byflyt.cli`` imports them, so
imports run one way: cli → command modules → cli_base.
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
