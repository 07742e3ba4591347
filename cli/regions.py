"""``byflyt regions …``: the regions byflyt knows, and kommuner named the old way resolved.

Regions are data (the built-in ``regions.json`` and ``BYFLYT_REGIONS_FILE``); a region written
with the names and numbers of an earlier year is shown with today's kommuner, and the table
says how each old entry was resolved. CSV and JSON print exactly the contract's columns; notes
go to stderr so the CSV stays clean.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from byflyt.errors import ConfigError
from byflyt.models.history import Resolution, UnknownKommune, kommune_history
from byflyt.models.kommuner import Region, get_region, kommune_name, load_regions

from .base import fail, settings_from
from .render import Format, FormatOpt, print_table, write_csv, write_json, write_records

ATTRIBUTION = (
    "Kommune boundaries © Kartverket (CC BY 4.0). Kommune history: Statistics Norway (SSB), "
    "classification 131 'Standard for kommuneinndeling' and its change lists "
    "(Kilde: Statistisk sentralbyrå, CC BY 4.0 / NLOD)."
)

regions_app = typer.Typer(
    help=(
        "Regions (named sets of kommuner) and the kommune history behind them: a region may "
        "name kommuner as they were before the 2018, 2020 and 2024 reforms; byflyt resolves "
        f"them to today's.\n\n{ATTRIBUTION}"
    ),
    no_args_is_help=True,
)

LIST_FIELDS = ("id", "name", "n_kommuner")
"""The columns of ``regions list`` CSV and JSON."""
SHOW_FIELDS = ("kommune_nr", "kommune")
"""The columns of ``regions show`` CSV and JSON (a contract)."""
RESOLVE_FIELDS = ("query", "kommune_nr", "kommune", "change")
"""The columns of ``regions resolve`` CSV and JSON (a contract)."""

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _regions() -> dict[str, Region]:
    settings = settings_from()
    try:
        return load_regions(settings.regions_file)
    except ConfigError as exc:
        fail(f"configuration error: {exc}")


def _table(*columns: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for name in columns:
        table.add_column(name, justify="right" if name == "n_kommuner" else "left")
    return table


def _records_table(fields: tuple[str, ...], records: list[dict[str, Any]]) -> Table:
    table = _table(*fields)
    for record in records:
        table.add_row(*(str(record[f]) for f in fields))
    return table


@regions_app.command("list")
def regions_list(output: FormatOpt = Format.table) -> None:
    """Every region byflyt knows (built in, plus BYFLYT_REGIONS_FILE): id, name, kommuner."""
    records = [
        {"id": r.key, "name": r.name, "n_kommuner": len(r.kommuner)}
        for r in sorted(_regions().values(), key=lambda r: r.key)
    ]
    write_records(output, LIST_FIELDS, records, lambda: _records_table(LIST_FIELDS, records))


@regions_app.command("show")
def regions_show(
    region_id: Annotated[str, typer.Argument(metavar="ID", help="Region id, e.g. mjosbyen.")],
    output: FormatOpt = Format.table,
) -> None:
    """Today's kommuner of a region, sorted by number; how old names were resolved, below."""
    settings = settings_from()
    try:
        region = get_region(region_id, settings.regions_file)
    except ConfigError as exc:
        fail(f"configuration error: {exc}")
    records = [{"kommune_nr": nr, "kommune": kommune_name(nr)} for nr in sorted(region.kommuner)]
    if output is Format.csv:
        write_csv(SHOW_FIELDS, records)
    elif output is Format.json:
        write_json(records)
    else:
        typer.echo(f"{region.name} ({region.key}): {len(records)} kommuner")
        table = _table(*SHOW_FIELDS)
        for record in records:
            table.add_row(record["kommune_nr"], record["kommune"])
        print_table(table)
        if region.note:
            typer.echo(region.note)
    for note in region.notes:
        typer.echo(f"resolved: {note}", err=output is not Format.table)


def resolution_record(found: Resolution) -> dict[str, Any]:
    """One ``regions resolve`` row with the contract's fields, in the contract's order."""
    named = "" if found.unchanged else f"{found.named.label} ({found.named.span()}): "
    return {
        "query": found.query,
        "kommune_nr": found.kommune.number,
        "kommune": kommune_name(found.kommune.number),
        "change": named + found.change,
    }


@regions_app.command("resolve")
def regions_resolve(
    text: Annotated[
        str, typer.Argument(metavar="TEXT", help="A kommune name or number, e.g. Sandøy or 1504.")
    ],
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            metavar="YYYY-MM-DD",
            help="The date the name or number was valid (default: today, else its latest use).",
        ),
    ] = None,
    output: FormatOpt = Format.table,
) -> None:
    """Today's kommune(s) for a kommune name or number as it was on a date.

    A merged kommune gives the kommune it is part of today; a split one gives every part. A
    name several kommuner shared (two Herøy, two Våler, two Nes before 2020) gives each of
    them, and says so on stderr.
    """
    day: date | None = None
    if at is not None:
        if not _DATE.match(at.strip()):
            fail(f"--at {at!r} is not a date such as 2018-01-01")
        try:
            day = date.fromisoformat(at.strip())
        except ValueError as exc:
            fail(f"--at {at!r}: {exc}")
    try:
        found = kommune_history().resolve(text, day)
    except UnknownKommune as exc:
        fail(str(exc), code=1)
    named = sorted({r.named for r in found}, key=lambda k: k.number)
    if len(named) > 1:
        when = f"on {day}" if day else "today" if all(k.current for k in named) else "in turn"
        typer.echo(
            f"byflyt: {text!r} named {len(named)} kommuner {when}: "
            f"{', '.join(k.label for k in named)}; each is shown",
            err=True,
        )
    records = [resolution_record(r) for r in found]
    write_records(output, RESOLVE_FIELDS, records, lambda: _records_table(RESOLVE_FIELDS, records))
