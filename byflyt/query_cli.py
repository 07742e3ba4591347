"""``byflyt query …``: read hourly aggregates from the store, as a table, CSV or JSON.

Times on the command line are ISO 8601 with an offset (``2025-10-26T02:00+01:00``,
``2025-10-26T01:00Z``) or a date (``2025-10-26``), which means midnight in Europe/Oslo. A time
without an offset is ambiguous (02:00 happens twice on 26 October) and is refused. Ranges are
half-open, ``[from, to)``. CSV and JSON give UTC hours; the table shows Europe/Oslo beside UTC.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, TypeVar, get_args

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from byflyt.cli_base import fail, settings_from
from byflyt.clock import OSLO, parse_when
from byflyt.errors import ConfigError, RetriableError
from byflyt.models.base import Mode, hour_floor, iso_z
from byflyt.models.kommuner import get_region, kommune_name, normalise_kommune_nr
from byflyt.models.volumes import HourlyVolume
from byflyt.settings import Settings

query_app = typer.Typer(help="Query hourly aggregates from the store.", no_args_is_help=True)

HOURLY_FIELDS = (
    "kommune_nr",
    "kommune",
    "mode",
    "metric",
    "hour_start",
    "value",
    "coverage",
    "n_sources",
)
"""The columns of ``query hourly`` CSV and JSON (a contract: scripts read them by name)."""
DAILY_FIELDS = ("kommune_nr", "kommune", "mode", "metric", "date", "value", "coverage", "hours")
"""The columns of ``query daily`` CSV and JSON."""

_T = TypeVar("_T")


class Format(StrEnum):
    """Output formats."""

    table = "table"
    csv = "csv"
    json = "json"


def number(value: float) -> int | float:
    """``153.0`` as ``153``; fractions stay as they are."""
    return int(value) if float(value).is_integer() else value


def hourly_record(row: HourlyVolume) -> dict[str, Any]:
    """One ``query hourly`` row with the contract's fields, in the contract's order."""
    return {
        "kommune_nr": row.kommune_nr,
        "kommune": kommune_name(row.kommune_nr),
        "mode": row.mode,
        "metric": row.metric,
        "hour_start": iso_z(row.hour_start),
        "value": number(row.value),
        "coverage": number(round(row.coverage, 2)),
        "n_sources": row.n_sources,
    }


@dataclass(frozen=True)
class DailyTotal:
    """A kommune's total of one metric over one Europe/Oslo day.

    ``hours`` counts the hours with a value; ``coverage`` is the mean hourly coverage over
    every hour of the day inside the queried range (23, 24 or 25 for whole days), an hour
    without a value counting 0: missing hours lower the coverage, never the value silently.
    """

    kommune_nr: str
    mode: str
    metric: str
    date: date
    value: float
    coverage: float
    hours: int

    def record(self) -> dict[str, Any]:
        """The row with :data:`DAILY_FIELDS`."""
        return {
            "kommune_nr": self.kommune_nr,
            "kommune": kommune_name(self.kommune_nr),
            "mode": self.mode,
            "metric": self.metric,
            "date": self.date.isoformat(),
            "value": number(self.value),
            "coverage": number(self.coverage),
            "hours": self.hours,
        }


def local_day_hours(start: datetime, end: datetime) -> Counter[date]:
    """How many UTC hours ``h`` with ``start <= h < end`` fall on each Europe/Oslo date."""
    hour = hour_floor(start)
    if hour < start:
        hour += timedelta(hours=1)
    counts: Counter[date] = Counter()
    while hour < end:
        counts[hour.astimezone(OSLO).date()] += 1
        hour += timedelta(hours=1)
    return counts


def daily_totals(rows: Iterable[HourlyVolume], start: datetime, end: datetime) -> list[DailyTotal]:
    """Sum hourly rows (all within ``[start, end)``) into Europe/Oslo days."""
    day_hours = local_day_hours(start, end)
    groups: dict[tuple[str, str, str, date], list[HourlyVolume]] = defaultdict(list)
    for row in rows:
        day = row.hour_start.astimezone(OSLO).date()
        groups[(row.kommune_nr, row.mode, row.metric, day)].append(row)
    return [
        DailyTotal(
            kommune_nr=kommune_nr,
            mode=mode,
            metric=metric,
            date=day,
            value=sum(r.value for r in members),
            coverage=round(sum(r.coverage for r in members) / day_hours[day], 2),
            hours=len(members),
        )
        for (kommune_nr, mode, metric, day), members in sorted(groups.items())
    ]


# -- output ----------------------------------------------------------------------------------
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


# -- commands --------------------------------------------------------------------------------
def _range(from_: str, to: str) -> tuple[datetime, datetime]:
    bounds = []
    for option, text in (("--from", from_), ("--to", to)):
        try:
            bounds.append(parse_when(text))
        except ValueError as exc:
            fail(f"{option}: {exc}")
    start, end = bounds
    if start >= end:
        fail(f"--from {from_} is not before --to {to}: the range [from, to) would be empty")
    return start, end


def region_kommuner(
    settings: Settings, region: str | None, kommuner: list[str] | None
) -> list[str] | None:
    """The kommuner to query: the region's, narrowed by ``--kommune``; None means all."""
    chosen: list[str] | None = None
    if kommuner:
        try:
            chosen = [normalise_kommune_nr(int(k) if k.isdigit() else k) for k in kommuner]
        except ValueError as exc:
            fail(f"--kommune: {exc}")
    key = region or settings.region
    if not key:
        return chosen
    try:
        members = get_region(key, settings.regions_file).kommuner
    except ConfigError as exc:
        fail(f"configuration error: {exc}")
    if chosen is None:
        return list(members)
    outside = [k for k in chosen if k not in members]
    if outside:
        fail(f"--kommune {', '.join(outside)} is not in region {key!r}; drop --region to use it")
    return chosen


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


def _query(
    settings: Settings,
    kommuner: list[str] | None,
    mode: str | None,
    metric: str | None,
    start: datetime,
    end: datetime,
) -> list[HourlyVolume]:
    return read_store(
        settings,
        mode,
        lambda store: store.query_hourly(
            kommuner=kommuner, mode=mode, metric=metric, start=start, end=end
        ),
    )


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
FormatOpt = Annotated[Format, typer.Option("--format", help="table, csv or json.")]


@query_app.command("hourly")
def hourly(
    from_: FromOpt,
    to: ToOpt,
    region: RegionOpt = None,
    kommune: KommuneOpt = None,
    mode: ModeOpt = None,
    metric: Annotated[
        str | None, typer.Option("--metric", metavar="METRIC", help="e.g. volume (default: all).")
    ] = None,
    output: FormatOpt = Format.table,
) -> None:
    """Hourly values per kommune in [from, to), with coverage and the number of sources."""
    settings = settings_from()
    start, end = _range(from_, to)
    rows = _query(settings, region_kommuner(settings, region, kommune), mode, metric, start, end)
    if output is Format.csv:
        write_csv(HOURLY_FIELDS, (hourly_record(r) for r in rows))
    elif output is Format.json:
        write_json([hourly_record(r) for r in rows])
    else:
        print_table(_hourly_table(rows))


@query_app.command("daily")
def daily(
    from_: FromOpt,
    to: ToOpt,
    region: RegionOpt = None,
    kommune: KommuneOpt = None,
    mode: ModeOpt = None,
    metric: Annotated[
        str, typer.Option("--metric", metavar="METRIC", help="The metric to total.")
    ] = "volume",
    output: FormatOpt = Format.table,
) -> None:
    """Daily totals per kommune (Europe/Oslo days: 23, 24 or 25 hours) with mean coverage."""
    settings = settings_from()
    start, end = _range(from_, to)
    rows = _query(settings, region_kommuner(settings, region, kommune), mode, metric, start, end)
    totals = daily_totals(rows, start, end)
    if output is Format.csv:
        write_csv(DAILY_FIELDS, (t.record() for t in totals))
    elif output is Format.json:
        write_json([t.record() for t in totals])
    else:
        print_table(_daily_table(totals))


# -- flows -----------------------------------------------------------------------------------
FLOWS_FIELDS = ("from", "from_name", "to", "to_name", "mode", "hour_start", "vehicle_trips")
"""The columns of ``query flows`` CSV and JSON. ``hour_start`` is empty when summed."""
FLOWS_NOTICE = (
    "Vehicle trips (kjøretøyturer), not passengers: the open feeds publish no passenger counts."
)
OUTSIDE = "outside"


class Level(StrEnum):
    """How ``query flows`` groups the ends of a crossing."""

    kommune = "kommune"
    region = "region"


def flow_records(
    flows: Iterable[Any], members: set[str] | None, level: Level, per_hour: bool
) -> list[dict[str, Any]]:
    """Rows of the flow matrix: kommune to kommune, or the region's in and out.

    At the region level a crossing with exactly one end in the region counts as in or out
    (``outside`` names the other side); crossings inside the region or wholly outside it are
    not region flows. Without ``per_hour`` the hours of the range are summed.
    """
    totals: Counter[tuple[str, str, str, str]] = Counter()
    for flow in flows:
        a, b = flow.from_kommune, flow.to_kommune
        if level is Level.region:
            if members is None or (a in members) == (b in members):
                continue
            a, b = ("region", OUTSIDE) if a in members else (OUTSIDE, "region")
        hour = iso_z(flow.hour_start) if per_hour else ""
        totals[(hour, a, b, flow.mode)] += flow.trips
    return [
        {
            "from": a,
            "from_name": _end_name(a),
            "to": b,
            "to_name": _end_name(b),
            "mode": mode,
            "hour_start": hour,
            "vehicle_trips": n,
        }
        for (hour, a, b, mode), n in sorted(totals.items())
    ]


def _end_name(end: str) -> str:
    if end in ("region", OUTSIDE):
        return end
    return kommune_name(end) or ""


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
    start, end = _range(from_, to)
    members = region_kommuner(settings, region, None)
    if level is Level.region and members is None:
        fail("--level region needs --region (or BYFLYT_REGION): which region's in and out?")
    found = read_store(
        settings,
        mode,
        lambda store: store.query_flows(kommuner=members, mode=mode, start=start, end=end),
    )
    records = flow_records(found, set(members) if members else None, level, per_hour)
    if output is Format.csv:
        write_csv(FLOWS_FIELDS, records)
    elif output is Format.json:
        write_json(records)
    else:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, caption=FLOWS_NOTICE)
        for name in FLOWS_FIELDS:
            right = name == "vehicle_trips"
            table.add_column(name, justify="right" if right else "left", no_wrap=True)
        for record in records:
            table.add_row(*(str(record[f]) for f in FLOWS_FIELDS))
        print_table(table)
