"""``byflyt query …``: read hourly aggregates from the store, as a table, CSV or JSON.

Times on the command line are ISO 8601 with an offset (``2025-10-26T02:00+01:00``,
``2025-10-26T01:00Z``) or a date (``2025-10-26``), which means midnight in Europe/Oslo. A time
without an offset is ambiguous (02:00 happens twice on 26 October) and is refused. Ranges are
half-open, ``[from, to)``. CSV and JSON give UTC hours; the table shows Europe/Oslo beside UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from byflyt.clock import OSLO
from byflyt.models.volumes import HourlyVolume
from byflyt.queries.flows import FLOWS_FIELDS, FLOWS_NOTICE, Level, flow_records
from byflyt.queries.hourly import (
    DAILY_FIELDS,
    HOURLY_FIELDS,
    DailyTotal,
    daily_totals,
    hourly_record,
)

from .base import fail, settings_from
from .options import (
    FromOpt,
    KommuneOpt,
    ModeOpt,
    RegionOpt,
    ToOpt,
    command_range,
    read_store,
    region_kommuner,
)
from .render import Format, FormatOpt, write_records

query_app = typer.Typer(help="Query hourly aggregates from the store.", no_args_is_help=True)


def _local(hour: datetime) -> str:
    # With its offset, so the two 02:00 hours of the autumn change read differently.
    return hour.astimezone(OSLO).isoformat(sep=" ", timespec="minutes")


def _hourly_table(rows: list[HourlyVolume]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for name in ("kommune_nr", "kommune", "mode", "metric", "hour (UTC)", "local (Europe/Oslo)"):
        table.add_column(name, no_wrap=True)
    for name in ("value", "coverage", "n_sources"):
        table.add_column(name, justify="right", no_wrap=True)
    for row in rows:
        record = hourly_record(row)
        table.add_row(
            row.kommune_nr,
            record["kommune"],
            row.mode,
            row.metric,
            row.hour_start.strftime("%Y-%m-%d %H:%MZ"),
            _local(row.hour_start),
            str(record["value"]),
            str(record["coverage"]),
            str(row.n_sources),
        )
    return table


def _daily_table(totals: list[DailyTotal]) -> Table:
    kinds = {(t.mode, t.metric) for t in totals}
    # One mode and metric (the usual case) goes in the title instead of two constant columns.
    title = " · ".join(next(iter(kinds))) if len(kinds) == 1 else None
    fields = [f for f in DAILY_FIELDS if title is None or f not in ("mode", "metric")]
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, title=title)
    for name in fields:
        right = name in ("value", "coverage", "hours")
        table.add_column(name, justify="right" if right else "left", no_wrap=True)
    for total in totals:
        record = total.record()
        table.add_row(*(str(record[f]) for f in fields))
    return table


def _query(
    from_: str,
    to: str,
    region: str | None,
    kommune: list[str] | None,
    mode: str | None,
    metric: str | None,
) -> tuple[list[HourlyVolume], datetime, datetime]:
    """The hourly values the options select, with the range [start, end) they were read for."""
    settings = settings_from()
    start, end = command_range(from_, to)
    kommuner = region_kommuner(settings, region, kommune)
    rows = read_store(
        settings,
        mode,
        lambda store: store.query_hourly(
            kommuner=kommuner, mode=mode, metric=metric, start=start, end=end
        ),
    )
    return rows, start, end


def _hourly_command(
    name: str,
    metric: object,
    default: str | None,
    doc: str,
    write: Callable[[list[HourlyVolume], datetime, datetime, Format], None],
) -> None:
    """Add ``query <name>``: the hourly values the options select, handed to ``write``.

    ``hourly`` and ``daily`` take the same options but for ``--metric`` (``metric``, an
    ``Annotated`` option, and its ``default``): declared once here.
    """

    def command(
        from_: FromOpt,
        to: ToOpt,
        region: RegionOpt = None,
        kommune: KommuneOpt = None,
        mode: ModeOpt = None,
        metric: str | None = default,
        output: FormatOpt = Format.table,
    ) -> None:
        rows, start, end = _query(from_, to, region, kommune, mode, metric)
        write(rows, start, end, output)

    command.__annotations__["metric"] = metric
    command.__doc__ = doc
    query_app.command(name)(command)


def _write_hourly(
    rows: list[HourlyVolume], _start: datetime, _end: datetime, output: Format
) -> None:
    records = [hourly_record(r) for r in rows]
    write_records(output, HOURLY_FIELDS, records, lambda: _hourly_table(rows))


def _write_daily(rows: list[HourlyVolume], start: datetime, end: datetime, output: Format) -> None:
    totals = daily_totals(rows, start, end)
    records = [t.record() for t in totals]
    write_records(output, DAILY_FIELDS, records, lambda: _daily_table(totals))


_hourly_command(
    "hourly",
    Annotated[
        str | None, typer.Option("--metric", metavar="METRIC", help="e.g. volume (default: all).")
    ],
    None,
    """Hourly values per kommune in [from, to), with coverage and the number of sources.""",
    _write_hourly,
)
_hourly_command(
    "daily",
    Annotated[str, typer.Option("--metric", metavar="METRIC", help="The metric to total.")],
    "volume",
    """Daily totals per kommune (Europe/Oslo days: 23, 24 or 25 hours) with mean coverage.""",
    _write_daily,
)


@query_app.command("flows")
def flows(
    from_: FromOpt,
    to: ToOpt,
    region: RegionOpt = None,
    level: Annotated[
        Level, typer.Option("--level", help="kommune (matrix) or region (in and out).")
    ] = Level.kommune,
    mode: ModeOpt = None,
    per_hour: Annotated[
        bool, typer.Option("--per-hour", help="One row per hour instead of range totals.")
    ] = False,
    output: FormatOpt = Format.table,
) -> None:
    """Transit vehicle trips between kommuner (or in and out of a region) in [from, to)."""
    settings = settings_from()
    start, end = command_range(from_, to)
    members = region_kommuner(settings, region, None)
    if level is Level.region and members is None:
        fail("--level region needs --region (or BYFLYT_REGION): which region's in and out?")
    found = read_store(
        settings,
        mode,
        lambda store: store.query_flows(kommuner=members, mode=mode, start=start, end=end),
    )
    records = flow_records(found, set(members) if members else None, level, per_hour)
    write_records(output, FLOWS_FIELDS, records, lambda: _flows_table(records))


def _flows_table(records: list[dict[str, Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, caption=FLOWS_NOTICE)
    for name in FLOWS_FIELDS:
        right = name == "vehicle_trips"
        table.add_column(name, justify="right" if right else "left", no_wrap=True)
    for record in records:
        table.add_row(*(str(record[f]) for f in FLOWS_FIELDS))
    return table
