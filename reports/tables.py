"""The report's content: its tables, read from the store (:class:`ReportData`).

Every table is a :class:`~byflyt.reports.table.ReportTable`, one shape for HTML and XLSX; the
outages and data-quality tables are built in :mod:`~byflyt.reports.quality`. The table keys
(``cycling_monthly``, ``index``, …) are the HTML section ids.

**Synthetic data.** The store has no flag for it; the report calls its data synthetic when any
counting point of the region carries a name marked ``(syntetisk)`` — :mod:`byflyt.samples`
names every made-up point that way — or when the caller says so (``byflyt report --synthetic``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from byflyt.clock import OSLO
from byflyt.i18n import Lang, mode_name, t
from byflyt.models.kommuner import Region, kommune_name
from byflyt.models.volumes import HourlyVolume
from byflyt.queries.hourly import local_sums, number
from byflyt.queries.index import AreaIndex, Period
from byflyt.queries.indicators import COUNTER_MODES, IndexResult, load_index, round_or_none
from byflyt.reports.quality import fetched_by_point, outages_table, quality_table
from byflyt.reports.table import ReportTable, make_table
from byflyt.store import Store

SYNTHETIC_MARK = "(syntetisk)"
"""How :mod:`byflyt.samples` marks the names of made-up points (and lines and agencies)."""

ATTRIBUTIONS = (
    (
        "Trafikkdata, Statens vegvesen",
        "NLOD",
        "Inneholder data under Norsk lisens for offentlige data (NLOD) tilgjengeliggjort av "
        "Statens vegvesen.",
    ),
    (
        "Entur (GTFS, GTFS-realtime, SIRI)",
        "NLOD",
        "Inneholder data under Norsk lisens for offentlige data (NLOD) tilgjengeliggjort av Entur.",
    ),
    (
        "Kommunegrenser og kommunenavn, Kartverket",
        "CC BY 4.0",
        "© Kartverket, CC BY 4.0.",
    ),
)
"""(source, licence, attribution text) shown in every report."""


@dataclass
class ReportData:
    """Everything a report shows, before it is rendered."""

    region: Region
    period: Period
    lang: Lang
    synthetic: bool
    generated: datetime
    tables: dict[str, ReportTable]
    index: IndexResult
    kommune_index: dict[str, AreaIndex]
    monthly: dict[tuple[str, date], float]
    profile: dict[str, list[float | None]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def months_of(period: Period) -> list[date]:
    """The first day of every month that the period touches."""
    months = []
    day = period.start.replace(day=1)
    while day < period.end:
        months.append(day)
        day = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
    return months


def month_of(day: date) -> date:
    """The first day of ``day``'s month."""
    return day.replace(day=1)


def build_report(
    store: Store,
    region: Region,
    period: Period,
    *,
    lang: Lang = "nb",
    min_hours: int,
    synthetic: bool | None = None,
    now: datetime | None = None,
) -> ReportData:
    """Read everything the report shows for ``region`` over ``period`` from ``store``."""
    generated = (now or datetime.now(UTC)).astimezone(OSLO)
    kommuner = list(region.kommuner)
    start, end = period.bounds()
    # Hours still to come are not missing: coverage is over the hours up to now.
    until = min(end, generated.astimezone(UTC).replace(minute=0, second=0, microsecond=0))
    every_point = store.query_points(kommuner=kommuner)
    points = [p for p in every_point if p.mode == "bicycle"]
    if synthetic is None:
        synthetic = any(SYNTHETIC_MARK in p.name for p in every_point)
    bicycle = store.query_hourly(
        kommuner=kommuner, mode="bicycle", metric="volume", start=start, end=end
    )
    index = load_index(store, mode="bicycle", kommuner=kommuner, period=period, min_hours=min_hours)
    kommune_index = {k: index.for_kommune(k) for k in kommuner}
    monthly, monthly_table = _monthly("cycling_monthly", bicycle, period, until, lang)
    tables = [monthly_table]
    if any(p.mode == "pedestrian" for p in every_point):
        walking = store.query_hourly(
            kommuner=kommuner, mode="pedestrian", metric="volume", start=start, end=end
        )
        tables.append(_monthly("walking_monthly", walking, period, until, lang)[1])
    windows = fetched_by_point(store.query_fetched(kommuner=kommuner))
    tables += [
        _index_table(region, index, kommune_index, lang),
        _index_points_table(index, lang),
        _transit_table(store, kommuner, start, end, lang),
        _flows_table(store, kommuner, start, end, lang),
        outages_table(store, region, every_point, windows, start, end, generated, lang),
        quality_table(store, kommuner, index, windows, start, until, lang),
        make_table(
            "attributions",
            lang,
            [("source", "text"), ("licence", "text"), ("attribution", "text")],
            list(ATTRIBUTIONS),
        ),
    ]
    with_points = {p.kommune_nr for p in points}
    without = [kommune_name(k) for k in kommuner if k not in with_points]
    notes = [t("min_hours_note", lang).format(n=min_hours)]
    if without:
        notes.append(t("kommuner_without_points", lang).format(names=", ".join(without)))
    return ReportData(
        region=region,
        period=period,
        lang=lang,
        synthetic=synthetic,
        generated=generated,
        tables={table.key: table for table in tables},
        index=index,
        kommune_index=kommune_index,
        monthly=monthly,
        profile=_profile(bicycle, lang),
        notes=notes,
    )


def _monthly(
    key: str, rows: list[HourlyVolume], period: Period, until: datetime, lang: Lang
) -> tuple[dict[tuple[str, date], float], ReportTable]:
    """Volume per kommune and month (``cycling_monthly`` or ``walking_monthly``).

    Months are summed by the query layer's Europe/Oslo day rule; coverage is over the month's
    hours in the period up to ``until`` (hours still to come are not missing).
    """
    start, end = period.bounds()
    sums = local_sums(rows, start, min(end, until), month_of)
    table_rows = [
        (
            kommune_nr,
            kommune_name(kommune_nr),
            month,
            number(total.value),
            round(total.coverage_sum / (total.period_hours or total.hours), 1),
            total.hours,
        )
        for (kommune_nr, _, _, month), total in sums.items()
    ]
    table = make_table(
        key,
        lang,
        [
            ("kommune_nr", "text"),
            ("kommune", "text"),
            ("month", "month"),
            ("volume" if key == "cycling_monthly" else "walkers", "int"),
            ("coverage_pct", "pct"),
            ("hours", "int"),
        ],
        table_rows,
    )
    return {(k, m): float(total.value) for (k, _, _, m), total in sums.items()}, table


def _index_row(area: str, kommune_nr: str, index: AreaIndex) -> tuple[Any, ...]:
    return (
        area,
        kommune_nr,
        index.n,
        index.matched_hours,
        number(index.base),
        number(index.current),
        round_or_none(index.index, 2),
        round_or_none(index.ci_low, 2),
        round_or_none(index.ci_high, 2),
    )


def _index_table(
    region: Region, index: IndexResult, per_kommune: dict[str, AreaIndex], lang: Lang
) -> ReportTable:
    rows = [_index_row(kommune_name(k), k, per_kommune[k]) for k in region.kommuner]
    rows.append(_index_row(f"{t('region', lang)}: {region.name}", "", index.area))
    return make_table(
        "index",
        lang,
        [
            ("area", "text"),
            ("kommune_nr", "text"),
            ("n_points", "int"),
            ("matched_hours", "int"),
            ("base", "int"),
            ("current", "int"),
            ("index_pct", "float"),
            ("ci_low", "float"),
            ("ci_high", "float"),
        ],
        rows,
    )


def _index_points_table(index: IndexResult, lang: Lang) -> ReportTable:
    rows = []
    for p in index.matched:
        info = index.points[p.point]
        rows.append(
            (
                info.point_id,
                info.name,
                kommune_name(info.kommune_nr),
                p.matched_hours,
                number(p.base),
                number(p.current),
                round_or_none(p.index, 2),
                round_or_none(index.area.weights.get(p.point), 4),
                t(index.status(p.point), lang),
            )
        )
    return make_table(
        "index_points",
        lang,
        [
            ("point_id", "text"),
            ("name", "text"),
            ("kommune", "text"),
            ("matched_hours", "int"),
            ("base", "int"),
            ("current", "int"),
            ("index_pct", "float"),
            ("weight", "float"),
            ("status", "text"),
        ],
        rows,
    )


def _transit_table(
    store: Store, kommuner: list[str], start: datetime, end: datetime, lang: Lang
) -> ReportTable:
    totals = store.total_hourly(kommuner=kommuner, start=start, end=end)
    cells: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
    for total in totals:
        if total.mode in COUNTER_MODES:
            continue
        cells[(total.kommune_nr, total.mode)][total.metric] = total
    rows = []
    for (kommune_nr, mode), metrics in sorted(cells.items()):
        if "departures" not in metrics and "cancelled_calls" not in metrics:
            continue  # vehicles or crossings only: no calls to report

        def value(metric: str, metrics: dict[str, Any] = metrics) -> int | float:
            found = metrics.get(metric)
            return number(found.value) if found is not None else 0

        delays, on_time = value("delay_count"), value("on_time_calls")
        departures = metrics.get("departures")
        coverage = (
            round(departures.coverage_sum / departures.hours, 1) if departures is not None else None
        )
        rows.append(
            (
                kommune_nr,
                kommune_name(kommune_nr),
                mode_name(mode, lang),
                value("departures"),
                value("trips"),
                value("cancelled_calls"),
                round(100.0 * on_time / delays, 1) if delays else None,
                coverage,
            )
        )
    return make_table(
        "transit",
        lang,
        [
            ("kommune_nr", "text"),
            ("kommune", "text"),
            ("mode", "text"),
            ("departures", "int"),
            ("trips", "int"),
            ("cancelled_calls", "int"),
            ("punctuality_pct", "pct"),
            ("coverage_pct", "pct"),
        ],
        rows,
    )


def _flows_table(
    store: Store, kommuner: list[str], start: datetime, end: datetime, lang: Lang
) -> ReportTable:
    """Vehicle trips into and out of the region (a kommune inside to one outside), by mode."""
    members = set(kommuner)
    into: dict[str, int] = defaultdict(int)
    out: dict[str, int] = defaultdict(int)
    for flow in store.query_flows(kommuner=kommuner, start=start, end=end):
        inside_from, inside_to = flow.from_kommune in members, flow.to_kommune in members
        if inside_to and not inside_from:
            into[flow.mode] += flow.trips
        elif inside_from and not inside_to:
            out[flow.mode] += flow.trips
    rows = [
        (mode_name(mode, lang), into.get(mode, 0), out.get(mode, 0))
        for mode in sorted(set(into) | set(out))
    ]
    return make_table(
        "transit_flows",
        lang,
        [("mode", "text"), ("trips_into_region", "int"), ("trips_out_of_region", "int")],
        rows,
    )


def _profile(rows: list[HourlyVolume], lang: Lang) -> dict[str, list[float | None]]:
    """Mean region-wide cyclists per local hour, on weekdays and on weekends."""
    region_hour: dict[datetime, float] = defaultdict(float)
    for row in rows:
        region_hour[row.hour_start] += row.value
    sums: dict[str, list[list[float]]] = {
        "weekday": [[] for _ in range(24)],
        "weekend": [[] for _ in range(24)],
    }
    for hour, value in region_hour.items():
        local = hour.astimezone(OSLO)
        sums["weekend" if local.weekday() >= 5 else "weekday"][local.hour].append(value)
    return {
        t(kind, lang): [sum(v) / len(v) if v else None for v in values]
        for kind, values in sums.items()
    }
