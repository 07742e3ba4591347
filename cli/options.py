"""The options commands share, and the read commands' translation into the query layer's terms.

A :class:`~byflyt.queries.selection.SelectionError` or a store error ends the command with one
line (``byflyt: --kommune: …``); the rules themselves live in :mod:`byflyt.queries`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, NoReturn, TypeVar, get_args

import typer

from byflyt.errors import ConfigError, RetriableError
from byflyt.models.base import Mode
from byflyt.queries.selection import SelectionError, select_kommuner, time_range
from byflyt.settings import Settings

from .base import fail

_T = TypeVar("_T")


def fail_selection(exc: SelectionError) -> NoReturn:
    """End the command with the selection problem, naming the option."""
    fix = f" (fix: {exc.fix})" if exc.fix else ""
    fail(f"--{exc.parameter}: {exc.message}{fix}")


def command_range(from_: str, to: str) -> tuple[datetime, datetime]:
    """``--from``/``--to`` as ``[start, end)``; a bad one ends the command."""
    try:
        return time_range(from_, to)
    except SelectionError as exc:
        fail_selection(exc)


def region_kommuner(
    settings: Settings, region: str | None, kommuner: Sequence[str] | None
) -> list[str] | None:
    """The kommuner to query: the region's (default ``BYFLYT_REGION``) narrowed by --kommune."""
    try:
        return select_kommuner(
            region or settings.region, kommuner, settings.regions_file, known_only=False
        )
    except SelectionError as exc:
        fail_selection(exc)


def read_store(settings: Settings, mode: str | None, read: Callable[[Any], _T]) -> _T:
    """Check ``--mode``, open the store and ``read`` it; store and config errors end the command."""
    # Imported here: SQLAlchemy would slow every other byflyt command's start.
    from sqlalchemy.exc import SQLAlchemyError

    from byflyt.store import Store

    if mode is not None and mode not in get_args(Mode):
        fail(f"--mode {mode!r} is unknown: use one of {', '.join(get_args(Mode))}")
    try:
        with Store.from_settings(settings) as store:
            return read(store)
    except ConfigError as exc:
        fail(f"configuration error: {exc}")
    except (RetriableError, SQLAlchemyError) as exc:
        fail(f"cannot read the store: {exc}", code=1)


RegionKeyOpt = Annotated[
    str | None,
    typer.Option("--region", help="Region key, e.g. mjosbyen (default: BYFLYT_REGION)."),
]
"""``--region`` of the commands that work on one whole region (``ingest``, ``transit sources``)."""
RegionOpt = Annotated[
    str | None,
    typer.Option(
        "--region", metavar="REGION", help="Region key, e.g. mjosbyen (default BYFLYT_REGION)."
    ),
]
KommuneOpt = Annotated[
    list[str] | None,
    typer.Option("--kommune", metavar="NR", help="Kommune number, e.g. 3403; repeat for more."),
]
ModeOpt = Annotated[
    str | None, typer.Option("--mode", metavar="MODE", help="e.g. bicycle (default: all).")
]
FromOpt = Annotated[
    str,
    typer.Option(
        "--from",
        metavar="TIME",
        help="Start, inclusive: 2025-10-26 (Oslo midnight) or ISO with offset.",
    ),
]
ToOpt = Annotated[
    str, typer.Option("--to", metavar="TIME", help="End, exclusive; same forms as --from.")
]
