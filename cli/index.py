"""``byflyt index``: is it growing? A period against the same period a year earlier.

The method (Statens vegvesen's sykkelindeks, and the same for transit departures) and the rule
for "a year earlier" across clock changes and leap days are in :mod:`byflyt.queries.index`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from byflyt.models.kommuner import kommune_name
from byflyt.queries.index import REASONS, AreaIndex, parse_period
from byflyt.queries.index_records import INDEX_FIELDS, area_record, index_summary, point_records
from byflyt.queries.indicators import IndexResult, load_index

from .base import fail, settings_from
from .options import KommuneOpt, RegionOpt, read_store, region_kommuner
from .render import Format, FormatOpt, print_table, write_csv


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:+.2f} %"


def _ci(area: AreaIndex) -> str:
    if area.ci_low is None or area.ci_high is None:
        return "– (n < 2)"
    return f"[{area.ci_low:+.2f}, {area.ci_high:+.2f}]"


def _tables(result: IndexResult, name: str) -> tuple[Table, Table]:
    area = result.area
    title = (
        f"{result.mode} index {name}, {result.period.describe()}: hours with coverage "
        f"≥ {result.min_coverage:g} % in both years, points with ≥ {result.min_hours} matched hours"
    )
    summary = Table(box=box.SIMPLE_HEAD, show_edge=False, title=title)
    for column in ("area", "index", "95 % CI", "n points", "matched hours", "base", "current"):
        summary.add_column(column, justify="left" if column == "area" else "right", no_wrap=True)
    summary.add_row(
        name,
        _pct(area.index),
        _ci(area),
        str(area.n),
        str(area.matched_hours),
        f"{area.base:g}",
        f"{area.current:g}",
    )
    points = Table(box=box.SIMPLE_HEAD, show_edge=False)
    columns = ("point", "name", "kommune", "matched hours", "base", "current", "index", "weight")
    for column in (*columns, "status"):
        right = column in ("matched hours", "base", "current", "index", "weight")
        points.add_column(column, justify="right" if right else "left", no_wrap=True)
    for record in point_records(result):
        weight = record["weight"]
        status = record["status"]
        points.add_row(
            record["id"],
            record["name"],
            f"{record['kommune_nr']} {record['kommune']}",
            str(record["matched_hours"]),
            f"{record['base']:g}",
            f"{record['current']:g}",
            _pct(record["index_pct"]),
            "" if weight is None else f"{weight:.3f}",
            status if status == "included" else f"excluded: {REASONS[status]}",
        )
    return summary, points


ModeOpt = Annotated[
    str,
    typer.Option(
        "--mode", metavar="MODE", help="bicycle, pedestrian, or a transit mode such as bus."
    ),
]
PeriodOpt = Annotated[
    str,
    typer.Option(
        "--period", metavar="PERIOD", help="A month (2025-10), a year (2025), ytd or ytd:DATE."
    ),
]
MinHoursOpt = Annotated[
    int | None,
    typer.Option(
        "--min-hours",
        metavar="H",
        help="Matched hours a point needs (default BYFLYT_INDEX_MIN_HOURS).",
    ),
]


def index(
    period: PeriodOpt,
    region: RegionOpt = None,
    mode: ModeOpt = "bicycle",
    kommune: KommuneOpt = None,
    min_hours: MinHoursOpt = None,
    output: FormatOpt = Format.table,
) -> None:
    """The area index with its 95 % CI, n points, matched hours and each point's index."""
    settings = settings_from()
    try:
        chosen_period = parse_period(period)
    except ValueError as exc:
        fail(f"--period: {exc}")
    if min_hours is not None and min_hours < 1:
        fail(f"--min-hours {min_hours}: give a whole number ≥ 1")
    kommuner = region_kommuner(settings, region, kommune)
    if kommuner is None:
        fail("--region: which area? give --region (or BYFLYT_REGION) or --kommune")
    label = ", ".join(f"{k} {kommune_name(k)}" for k in kommuner)
    name = label if kommune else str(region or settings.region)
    needed = min_hours if min_hours is not None else settings.index_min_hours
    result = read_store(
        settings,
        mode,
        lambda store: load_index(
            store, mode=mode, kommuner=kommuner, period=chosen_period, min_hours=needed
        ),
    )
    records = [area_record(result, name), *point_records(result)]
    if output is Format.csv:
        write_csv(INDEX_FIELDS, records)
    elif output is Format.json:
        _json_out(result, records)
    else:
        for table in _tables(result, name):
            print_table(table)


def _json_out(result: IndexResult, records: list[dict[str, Any]]) -> None:
    answer = {**index_summary(result), "area": records[0], "points": records[1:]}
    # One object, not a list as ``query`` prints: an index is one answer.
    typer.echo(json.dumps(answer, ensure_ascii=False, indent=2))
