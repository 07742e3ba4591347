"""The report's outages and data-quality tables, judged over the hours each source was asked for.

A counter is only judged over its fetched windows (``bike.fetched``): a gap between them is
"not ingested" — nobody asked the source for those hours — never an outage.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from byflyt.clock import OSLO
from byflyt.i18n import Lang, mode_name, t
from byflyt.models.kommuner import Region, kommune_name
from byflyt.queries.index import MIN_COVERAGE
from byflyt.queries.indicators import IndexResult
from byflyt.queries.outages import area_outages
from byflyt.reports.table import ReportTable, hours_between, make_table
from byflyt.store import Fetched, Store

Span = tuple[datetime, datetime]


def fetched_by_point(windows: list[Fetched]) -> dict[tuple[str, str], list[Span]]:
    """Each point's fetched windows ``[since, until)``, in order."""
    result: dict[tuple[str, str], list[Span]] = defaultdict(list)
    for w in windows:
        result[(w.source, w.point_id)].append((w.since, w.until))
    for spans in result.values():
        spans.sort()
    return result


def within_fetched(spans: list[Span], since: datetime, until: datetime) -> list[Span]:
    """The parts of ``[since, until)`` inside the fetched windows ``spans``."""
    parts = [(max(since, a), min(until, b)) for a, b in spans]
    return [(a, b) for a, b in parts if a < b]


def not_fetched(spans: list[Span]) -> list[Span]:
    """The gaps between consecutive fetched windows: hours nobody asked the source for."""
    return [(a[1], b[0]) for a, b in pairwise(spans) if a[1] < b[0]]


def outages_table(
    store: Store,
    region: Region,
    points: list[Any],
    windows: dict[tuple[str, str], list[Span]],
    start: datetime,
    end: datetime,
    generated: datetime,
    lang: Lang,
) -> ReportTable:
    """Outages overlapping the period; a counter's only over the hours its source was asked for.

    A counter outage is cut to the point's fetched windows (when the point has any on record),
    and each gap between its windows is a "not ingested" row instead: nobody asked the source
    for those hours, so nothing can be said about the counter then.
    """
    counters = {(p.source, p.point_id): p for p in points}
    now = generated.astimezone(UTC)
    found: list[tuple[datetime, str, str, str, tuple[Any, ...]]] = []

    def add(
        source: str,
        point_id: str,
        kommune_nr: str | None,
        kind: str,
        started: datetime,
        ended: datetime | None,
        details: str,
    ) -> None:
        if started >= end or (ended is not None and ended <= start):
            return
        until = ended if ended is not None else now
        row = (
            t("counter" if (source, point_id) in counters else "feed", lang),
            source,
            point_id,
            kommune_name(kommune_nr) if kommune_nr else "",
            kind,
            started.astimezone(OSLO),
            ended.astimezone(OSLO) if ended is not None else None,
            round((until - started) / timedelta(hours=1), 1),
            details or ("" if ended is not None else t("open", lang)),
        )
        found.append((started, source, point_id, kind, row))

    for outage in area_outages(store, region):
        spans = windows.get((outage.source, outage.point_id))
        if not spans:  # no fetched windows on record: the outage as the status agent saw it
            parts: list[tuple[datetime, datetime | None]] = [(outage.started, outage.ended)]
        else:
            until = outage.ended if outage.ended is not None else now
            parts = [
                (a, outage.ended if b == until else b)
                for a, b in within_fetched(spans, outage.started, until)
            ]
        o = outage
        for a, b in parts:
            add(o.source, o.point_id, o.kommune_nr, o.kind, a, b, o.details)
    for (source, point_id), spans in windows.items():
        point = counters.get((source, point_id))
        for a, b in not_fetched(spans):
            kommune_nr = point.kommune_nr if point is not None else None
            details = t("not_ingested_details", lang)
            add(source, point_id, kommune_nr, t("not_ingested", lang), a, b, details)
    rows = [row for *_, row in sorted(found, key=lambda f: f[:4])]
    return make_table(
        "outages",
        lang,
        [
            ("type", "text"),
            ("source", "text"),
            ("point_id", "text"),
            ("kommune", "text"),
            ("kind", "text"),
            ("started", "datetime"),
            ("ended", "datetime"),
            ("duration_hours", "float"),
            ("details", "text"),
        ],
        rows,
    )


def quality_table(
    store: Store,
    kommuner: list[str],
    index: IndexResult,
    windows: dict[tuple[str, str], list[Span]],
    start: datetime,
    until: datetime,
    lang: Lang,
) -> ReportTable:
    """Per point: hours with data, coverage, hours fit for the index, hours not ingested."""
    period_hours = hours_between(start, until)
    seen: dict[tuple[str, str], list[Any]] = {}
    names = {(p.source, p.point_id): p for p in store.query_points(kommuner=kommuner)}
    for h in store.query_point_hourly(kommuner=kommuner, start=start, end=until):
        cell = seen.setdefault((h.source, h.point_id), [h.kommune_nr, h.mode, 0, 0.0, 0])
        if h.volume is not None:
            cell[2] += 1
        cell[3] += h.coverage
        cell[4] += h.coverage >= MIN_COVERAGE and h.volume is not None
    for pair, p in names.items():
        seen.setdefault(pair, [p.kommune_nr, p.mode, 0, 0.0, 0])
    rows = []
    for (source, point_id), (kommune_nr, mode, hours, coverage, ok) in sorted(seen.items()):
        key = f"{source}:{point_id}"
        if mode != "bicycle":
            status = "—"
        elif key in index.points:
            status = t(index.status(key), lang)
        else:
            status = t("no_index", lang)
        meta = names.get((source, point_id))
        spans = windows.get((source, point_id))
        fetched_hours = sum(
            hours_between(a, b) for a, b in within_fetched(spans or [], start, max(start, until))
        )
        rows.append(
            (
                source,
                point_id,
                meta.name if meta is not None else "",
                kommune_name(kommune_nr),
                mode_name(mode, lang),
                period_hours,
                hours,
                round(coverage / period_hours, 1) if period_hours else None,
                int(ok),
                period_hours - fetched_hours if spans else None,
                status,
            )
        )
    return make_table(
        "data_quality",
        lang,
        [
            ("source", "text"),
            ("point_id", "text"),
            ("name", "text"),
            ("kommune", "text"),
            ("mode", "text"),
            ("period_hours", "int"),
            ("hours", "int"),
            ("coverage_pct", "pct"),
            ("hours_ok", "int"),
            ("not_ingested_hours", "int"),
            ("status", "text"),
        ],
        rows,
    )
