"""``byflyt report``: the indicator report of a region for a year or a month, as HTML and XLSX."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import typer

from byflyt.clock import OSLO
from byflyt.errors import ConfigError

from .base import fail, settings_from
from .options import RegionOpt, read_store

Lang = Literal["nb", "en"]


def report(
    out: Annotated[
        Path, typer.Option("--out", metavar="DIR", help="Folder for the HTML and XLSX files.")
    ],
    region: RegionOpt = None,
    year: Annotated[
        int | None,
        typer.Option("--year", metavar="YYYY", help="The year (default: this year, Oslo)."),
    ] = None,
    month: Annotated[
        int | None, typer.Option("--month", metavar="M", help="One month of the year, 1–12.")
    ] = None,
    lang: Annotated[
        str, typer.Option("--lang", metavar="LANG", help="nb (bokmål, default) or en.")
    ] = "nb",
    synthetic: Annotated[
        bool | None,
        typer.Option(
            "--synthetic/--measured",
            help="Label the data synthetic or measured (default: detect from point names).",
        ),
    ] = None,
    min_hours: Annotated[
        int | None,
        typer.Option("--min-hours", metavar="H", help="Matched hours a point needs in the index."),
    ] = None,
) -> None:
    """Write the region's indicator report (HTML with figures, and an XLSX workbook)."""
    from byflyt.models.kommuner import get_region
    from byflyt.reports.report import write_report

    settings = settings_from()
    key = region or settings.region
    if not key:
        fail("--region: which region? give --region (or BYFLYT_REGION), e.g. mjosbyen")
    try:
        chosen = get_region(key, settings.regions_file)
    except ConfigError as exc:
        fail(f"--region: {exc.problem} ({exc.fix})")
    when = year if year is not None else datetime.now(OSLO).year
    if not 2000 <= when <= 2100:
        fail(f"--year {when}: give a year such as 2025")
    if month is not None and not 1 <= month <= 12:
        fail(f"--month {month}: give a month number 1–12")
    if lang not in ("nb", "en"):
        fail(f"--lang {lang!r}: use nb (bokmål) or en")
    if min_hours is not None and min_hours < 1:
        fail(f"--min-hours {min_hours}: give a whole number ≥ 1")
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: is a file, not a folder")
    language: Lang = "en" if lang == "en" else "nb"
    written = read_store(
        settings,
        None,
        lambda store: write_report(
            store,
            chosen,
            when,
            month,
            out,
            lang=language,
            min_hours=min_hours if min_hours is not None else settings.index_min_hours,
            synthetic=synthetic,
        ),
    )
    typer.echo(f"HTML: {written.html}")
    typer.echo(f"XLSX: {written.xlsx}")
