"""``byflyt outages``: the outages the status agents recorded, as a table, CSV or JSON.

CSV and JSON give UTC times (ISO 8601, ``Z``) and the duration in seconds; the table shows
Europe/Oslo times and a readable duration. An open outage's duration runs to now (wall clock:
this is for a person reading it now).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from byflyt.clock import OSLO
from byflyt.models.kommuner import kommune_name
from byflyt.queries.outages import OUTAGE_FIELDS, area_outages, duration
from byflyt.queries.outages import outage_record as record_of
from byflyt.store import Outage

from .base import settings_from
from .options import RegionOpt, read_store, region_kommuner
from .render import Format, FormatOpt, write_records


def human(span: timedelta) -> str:
    """``2 d 3 h``, ``5 h 20 min``, ``12 min``: a duration for a person."""
    minutes = max(0, int(span.total_seconds() // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def outage_record(outage: Outage, now: datetime) -> dict[str, Any]:
    """One outage with the contract's fields, in order; an absent kommune or end is empty."""
    return {k: "" if v is None else v for k, v in record_of(outage, now).items()}


def _local(moment: datetime | None) -> str:
    # With the offset, so the two 02:00 hours of the autumn change read differently.
    return moment.astimezone(OSLO).isoformat(sep=" ", timespec="minutes") if moment else ""


def outages_table(outages: Sequence[Outage], now: datetime) -> Table:
    """The outages as a table, in Europe/Oslo time."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for name in (
        "source",
        "point",
        "kommune",
        "kind",
        "started (Europe/Oslo)",
        "ended (Europe/Oslo)",
        "duration",
        "details",
    ):
        table.add_column(name, no_wrap=name != "details")
    for outage in outages:
        place = ""
        if outage.kommune_nr:
            place = f"{outage.kommune_nr} {kommune_name(outage.kommune_nr) or ''}".strip()
        span = human(duration(outage, now))
        table.add_row(
            outage.source,
            outage.point_id,
            place,
            outage.kind,
            _local(outage.started),
            _local(outage.ended) or "open",
            f"{span} so far" if outage.is_open else span,
            outage.details,
        )
    return table


def outages(
    region: RegionOpt = None,
    open_only: Annotated[
        bool, typer.Option("--open", help="Only outages that have not ended.")
    ] = False,
    output: FormatOpt = Format.table,
) -> None:
    """Sensor outages (silent, flat, low coverage; stale or empty feeds), oldest first.

    With a region, the counter points in its kommuner are listed, and every feed's outages
    (a feed has no kommune; the region's transit figures depend on it whole).
    """
    settings = settings_from()
    kommuner = region_kommuner(settings, region, None)
    found = read_store(
        settings, None, lambda store: area_outages(store, kommuner, open_only=open_only)
    )
    now = datetime.now(UTC)
    records = [outage_record(o, now) for o in found]
    write_records(output, OUTAGE_FIELDS, records, lambda: outages_table(found, now))
