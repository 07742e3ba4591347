"""How commands print: a table for people, CSV and JSON with exact headers for scripts."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table


class Format(StrEnum):
    """Output formats."""

    table = "table"
    csv = "csv"
    json = "json"


def write_csv(fields: Sequence[str], records: Iterable[dict[str, Any]]) -> None:
    """Print ``records`` as CSV with exactly the header ``fields``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    typer.echo(buffer.getvalue(), nl=False)


def write_json(records: list[dict[str, Any]]) -> None:
    """Print ``records`` as a JSON array."""
    typer.echo(json.dumps(records, ensure_ascii=False, indent=2))


def print_table(table: Table) -> None:
    """Print a rich table (plain, full width, when not on a terminal)."""
    console = Console(highlight=False)
    if not console.is_terminal:
        # Piped or captured: never wrap or cut a row to an assumed 80 columns.
        console = Console(highlight=False, width=400)
    console.print(table)


def write_records(
    output: Format,
    fields: Sequence[str],
    records: list[dict[str, Any]],
    table: Callable[[], Table],
) -> None:
    """Print ``records`` as ``output``: CSV headed ``fields``, a JSON array, or ``table()``."""
    if output is Format.csv:
        write_csv(fields, records)
    elif output is Format.json:
        write_json(records)
    else:
        print_table(table())


FormatOpt = Annotated[Format, typer.Option("--format", help="table, csv or json.")]
