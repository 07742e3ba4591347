"""The analysts' read-only HTTP API under ``/api/v1``.

Regions, kommuner, points, hourly values, the index and outages. Lists are paged with ``limit``
and ``offset``; every page carries ``total`` and ``links`` (also sent as an RFC 8288 ``Link``
header). ``/hourly`` answers CSV with the exact columns of ``byflyt query hourly --format csv``
when asked with ``Accept: text/csv``. Times are UTC (``2025-10-26T01:00:00Z``); parameters take
what ``byflyt query`` takes. Errors are RFC 7807 problem details (:mod:`byflyt.web.problems`).
"""

import csv
import io
from collections.abc import Callable, Sequence
from functools import partial
from typing import Annotated, Any, Generic, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from byflyt.errors import RetriableError
from byflyt.models.base import Mode, iso_z
from byflyt.models.kommuner import kommune_names, load_regions
from byflyt.queries.hourly import HOURLY_FIELDS, hourly_record
from byflyt.queries.index import MIN_COVERAGE, Period, parse_period
from byflyt.queries.index_records import area_record, index_summary, point_records
from byflyt.queries.indicators import (
    IndexResult,
    MatchedPoints,
    assemble_index,
    load_index,
    matched_points,
)
from byflyt.settings import Settings
from byflyt.store import Store
from byflyt.web.params import kommuner_for, time_range
from byflyt.web.problems import PROBLEM_RESPONSES, bad_parameter, store_unavailable
from byflyt.web.reuse import Reuse
from byflyt.web.security import token_checker

CSV = "text/csv"
_T = TypeVar("_T")
_Item = TypeVar("_Item", bound=BaseModel)

RegionParam = Annotated[
    str | None,
    Query(description="Region key, e.g. mjosbyen (see /api/v1/regions).", max_length=64),
]
KommuneParam = Annotated[
    list[str] | None,
    Query(description="Kommune number, e.g. 3403; repeat for more.", max_length=20),
]
ModeParam = Annotated[Mode | None, Query(description="Mode, e.g. bicycle (default: all).")]
OffsetParam = Annotated[int, Query(ge=0, le=1_000_000_000, description="Items to skip.")]


# -- response shapes -------------------------------------------------------------------------
class Links(BaseModel):
    """Where this page, the next and the previous are (relative URLs; null at the ends)."""

    self: str
    next: str | None
    prev: str | None


class Page(BaseModel, Generic[_Item]):
    """One page of a list."""

    items: list[_Item]
    total: int = Field(description="Items in the whole list.")
    limit: int
    offset: int
    links: Links


class RegionItem(BaseModel):
    """A region: a named set of kommuner."""

    key: str
    name: str
    kommuner: list[str]
    counties: list[str]
    note: str


class KommuneItem(BaseModel):
    """A kommune (2024 numbering) and the regions it belongs to."""

    kommune_nr: str
    kommune: str
    regions: list[str]


class PointItem(BaseModel):
    """A counting point."""

    source: str
    point_id: str
    name: str
    kommune_nr: str
    kommune: str
    mode: str
    lat: float | None
    lon: float | None
    first_data: str | None
    latest_data: str | None
    operational_status: str | None


class HourlyItem(BaseModel):
    """A kommune-hour value: the columns of ``byflyt query hourly``."""

    kommune_nr: str
    kommune: str
    mode: str
    metric: str
    hour_start: str = Field(description="UTC start of the hour, e.g. 2025-10-26T01:00:00Z.")
    value: float
    coverage: float = Field(description="Percent of expected sensor-hours that reported.")
    n_sources: int


class OutageItem(BaseModel):
    """A period when a counter or feed was silent, flat, short of coverage, stale or empty."""

    source: str
    point_id: str
    kind: str
    started: str
    ended: str | None
    open: bool
    kommune_nr: str | None
    kommune: str | None
    details: str


class IndexRow(BaseModel):
    """The area's row or one point's row of ``byflyt index`` (``level`` says which)."""

    level: str
    id: str
    name: str
    kommune_nr: str
    kommune: str
    matched_hours: int
    base: float
    current: float
    index_pct: float | None
    weight: float | None
    ci_low: float | None
    ci_high: float | None
    n_points: int | None
    status: str


class IndexAnswer(BaseModel):
    """An area's index against the same period a year earlier, with its points (paged)."""

    mode: str
    period: str
    from_: str = Field(alias="from")
    to: str
    base_from: str
    base_to: str
    min_hours: int
    min_coverage: float
    sd: float | None
    se: float | None
    t: float | None
    area: IndexRow
    points: Page[IndexRow]


# -- helpers ---------------------------------------------------------------------------------
def _relative(request: Request, **params: Any) -> str:
    url = request.url.include_query_params(**params)
    return f"{url.path}?{url.query}"


def links(request: Request, total: int, limit: int, offset: int) -> Links:
    """The page's own, next and previous URLs."""
    after = offset + limit
    return Links(
        self=_relative(request, limit=limit, offset=offset),
        next=_relative(request, limit=limit, offset=after) if after < total else None,
        prev=_relative(request, limit=limit, offset=max(0, offset - limit)) if offset else None,
    )


def link_header(page_links: Links) -> str:
    """The RFC 8288 ``Link`` header of a page."""
    parts = [f'<{page_links.self}>; rel="self"']
    if page_links.next:
        parts.append(f'<{page_links.next}>; rel="next"')
    if page_links.prev:
        parts.append(f'<{page_links.prev}>; rel="prev"')
    return ", ".join(parts)


def page(
    request: Request, items: Sequence[Any], total: int, limit: int, offset: int
) -> JSONResponse:
    """A JSON page with its ``Link`` and ``X-Total-Count`` headers."""
    page_links = links(request, total, limit, offset)
    body = {
        "items": list(items),
        "total": total,
        "limit": limit,
        "offset": offset,
        "links": page_links.model_dump(),
    }
    return JSONResponse(body, headers=_headers(page_links, total))


def paged(
    request: Request,
    found: Sequence[_T],
    limit: int,
    offset: int,
    item: Callable[[_T], BaseModel],
) -> JSONResponse:
    """The page ``[offset, offset + limit)`` of ``found``, each made an item by ``item``."""
    items = [item(each).model_dump() for each in found[offset : offset + limit]]
    return page(request, items, len(found), limit, offset)


def _headers(page_links: Links, total: int) -> dict[str, str]:
    return {"Link": link_header(page_links), "X-Total-Count": str(total)}


def wants_csv(request: Request) -> bool:
    """Whether the client asked for CSV (``Accept: text/csv``) rather than JSON."""
    accept = request.headers.get("accept", "")
    kinds = [part.split(";", 1)[0].strip().lower() for part in accept.split(",")]
    return CSV in kinds and "application/json" not in kinds[: kinds.index(CSV)]


# -- the router ------------------------------------------------------------------------------
def api_router(settings: Settings, store: Callable[[], Store]) -> APIRouter:
    """The ``/api/v1`` routes, reading ``store()`` and the region registry of ``settings``.

    With ``BYFLYT_SERVE_TOKEN`` set every route needs it as a bearer token.
    """
    dependencies, responses = [], dict(PROBLEM_RESPONSES)
    if settings.serve_token is not None:
        dependencies.append(Depends(token_checker(settings)))
        responses[401] = {**PROBLEM_RESPONSES[400], "description": "No or a wrong bearer token."}
    router = APIRouter(
        prefix="/api/v1", tags=["api"], responses=responses, dependencies=dependencies
    )
    max_limit = settings.serve_max_page_size
    LimitParam = Annotated[
        int, Query(ge=1, le=max_limit, description=f"Items per page (at most {max_limit}).")
    ]

    matched: Reuse[MatchedPoints] = Reuse(settings.serve_index_reuse_seconds, max_entries=1024)

    def index_of(
        mode: str, kommuner: list[str], period: Period, min_hours: int
    ) -> tuple[IndexResult, float]:
        """The index and the age of its oldest part: each kommune's points are reused."""

        def part_of(nr: str) -> MatchedPoints:
            return read(lambda s: matched_points(s, mode=mode, kommuner=[nr], period=period))

        parts, age = [], 0.0
        for nr in kommuner:
            part, part_age = matched.get((mode, nr, period), partial(part_of, nr))
            parts.append(part)
            age = max(age, part_age)
        keys = [key for part in parts for key in part.kommuner]
        if len(keys) != len(set(keys)):  # a point whose rows name two kommuner: read it whole
            whole = read(
                lambda s: load_index(
                    s, mode=mode, kommuner=kommuner, period=period, min_hours=min_hours
                )
            )
            return whole, 0.0
        result = read(
            lambda s: assemble_index(
                s,
                mode=mode,
                kommuner=kommuner,
                period=period,
                min_hours=min_hours,
                min_coverage=MIN_COVERAGE,
                parts=parts,
            )
        )
        return result, age

    def read(what: Callable[[Store], _T]) -> _T:
        try:
            return what(store())
        except (RetriableError, SQLAlchemyError) as exc:
            raise store_unavailable(exc) from exc

    @router.get("/regions", response_model=Page[RegionItem], summary="Regions")
    def regions(request: Request, limit: LimitParam = 100, offset: OffsetParam = 0) -> Response:
        """The regions byflyt knows (built in, plus ``BYFLYT_REGIONS_FILE``)."""
        known = sorted(load_regions(settings.regions_file).values(), key=lambda r: r.key)
        return paged(
            request,
            known,
            limit,
            offset,
            lambda r: RegionItem(
                key=r.key,
                name=r.name,
                kommuner=list(r.kommuner),
                counties=list(r.counties),
                note=r.note,
            ),
        )

    @router.get("/kommuner", response_model=Page[KommuneItem], summary="Kommuner")
    def kommuner(
        request: Request,
        region: RegionParam = None,
        limit: LimitParam = 500,
        offset: OffsetParam = 0,
    ) -> Response:
        """Kommuner (2024 numbering) with the regions each belongs to; ``region`` narrows."""
        chosen = kommuner_for(region, None, settings.regions_file)
        all_regions = load_regions(settings.regions_file)
        numbers = sorted(chosen if chosen is not None else kommune_names())
        return paged(
            request,
            numbers,
            limit,
            offset,
            lambda nr: KommuneItem(
                kommune_nr=nr,
                kommune=kommune_names().get(nr, nr),
                regions=sorted(k for k, r in all_regions.items() if nr in r.kommuner),
            ),
        )

    @router.get("/points", response_model=Page[PointItem], summary="Counting points")
    def points(
        request: Request,
        region: RegionParam = None,
        kommune: KommuneParam = None,
        mode: ModeParam = None,
        limit: LimitParam = 500,
        offset: OffsetParam = 0,
    ) -> Response:
        """Counting points in the store, by source and point id."""
        chosen = kommuner_for(region, kommune, settings.regions_file)
        found = read(lambda s: s.query_points(kommuner=chosen, mode=mode))
        return paged(
            request,
            found,
            limit,
            offset,
            lambda p: PointItem(
                **p.model_dump(exclude={"first_data", "latest_data"}),
                kommune=kommune_names().get(p.kommune_nr, p.kommune_nr),
                first_data=iso_z(p.first_data) if p.first_data else None,
                latest_data=iso_z(p.latest_data) if p.latest_data else None,
            ),
        )

    @router.get(
        "/hourly",
        response_model=Page[HourlyItem],
        summary="Hourly values per kommune",
        responses={200: {"content": {CSV: {"schema": {"type": "string"}}}}},
    )
    def hourly(
        request: Request,
        from_: Annotated[
            str,
            Query(
                alias="from",
                max_length=64,
                description="Start, inclusive: 2025-10-26 (Europe/Oslo midnight) or ISO 8601 "
                "with an offset (2025-10-26T01:00Z).",
            ),
        ],
        to: Annotated[str, Query(max_length=64, description="End, exclusive; same forms as from.")],
        region: RegionParam = None,
        kommune: KommuneParam = None,
        mode: ModeParam = None,
        metric: Annotated[
            str | None,
            Query(pattern=r"^[a-z_]+$", max_length=64, description="e.g. volume, departures."),
        ] = None,
        limit: LimitParam = 1000,
        offset: OffsetParam = 0,
    ) -> Response:
        """Kommune-hours in ``[from, to)`` with coverage and sources; CSV with Accept: text/csv."""
        start, end = time_range(from_, to, settings.serve_max_range_days)
        chosen = kommuner_for(region, kommune, settings.regions_file)
        rows, total = read(
            lambda s: s.query_hourly_page(
                kommuner=chosen,
                mode=mode,
                metric=metric,
                start=start,
                end=end,
                limit=limit,
                offset=offset,
            )
        )
        records = [hourly_record(r) for r in rows]
        if wants_csv(request):
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=HOURLY_FIELDS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(records)
            return Response(
                buffer.getvalue(),
                media_type=f"{CSV}; charset=utf-8",
                headers=_headers(links(request, total, limit, offset), total),
            )
        return page(request, records, total, limit, offset)

    @router.get("/index", response_model=IndexAnswer, summary="Index against a year earlier")
    def index(
        request: Request,
        period: Annotated[
            str,
            Query(max_length=32, description="A month (2025-10), a year (2025), ytd or ytd:DATE."),
        ],
        region: RegionParam = None,
        kommune: KommuneParam = None,
        mode: Annotated[Mode, Query(description="bicycle, pedestrian or a transit mode.")] = (
            "bicycle"
        ),
        min_hours: Annotated[
            int | None,
            Query(ge=1, le=8784, description="Matched hours a point needs (default setting)."),
        ] = None,
        limit: LimitParam = 500,
        offset: OffsetParam = 0,
    ) -> Response:
        """The area index with its 95 % CI, n points and matched hours, and each point's index."""
        try:
            chosen_period = parse_period(period)
        except (ValueError, OverflowError) as exc:
            raise bad_parameter("period", str(exc)) from None
        region = region or settings.region
        chosen = kommuner_for(region, kommune, settings.regions_file)
        if chosen is None:
            raise bad_parameter("region", "which area? give region (e.g. mjosbyen) or kommune")
        name = region if region and not kommune else ", ".join(chosen)
        needed = min_hours if min_hours is not None else settings.index_min_hours
        result, age = index_of(mode, chosen, chosen_period, needed)
        rows = point_records(result)
        page_links = links(request, len(rows), limit, offset)
        body = {
            **index_summary(result),
            "area": area_record(result, name),
            "points": {
                "items": rows[offset : offset + limit],
                "total": len(rows),
                "limit": limit,
                "offset": offset,
                "links": page_links.model_dump(),
            },
        }
        return JSONResponse(body, headers={**_headers(page_links, len(rows)), "Age": str(int(age))})

    @router.get("/outages", response_model=Page[OutageItem], summary="Outages")
    def outages(
        request: Request,
        region: RegionParam = None,
        kommune: KommuneParam = None,
        open_only: Annotated[
            bool, Query(alias="open", description="Only outages that have not ended.")
        ] = False,
        limit: LimitParam = 500,
        offset: OffsetParam = 0,
    ) -> Response:
        """Counter and feed outages by start time (feeds have no kommune and always show)."""
        chosen = kommuner_for(region, kommune, settings.regions_file)
        found = [
            o
            for o in read(lambda s: s.query_outages(open_only=open_only))
            if chosen is None or o.kommune_nr is None or o.kommune_nr in chosen
        ]
        return paged(
            request,
            found,
            limit,
            offset,
            lambda o: OutageItem(
                source=o.source,
                point_id=o.point_id,
                kind=o.kind,
                started=iso_z(o.started),
                ended=iso_z(o.ended) if o.ended else None,
                open=o.is_open,
                kommune_nr=o.kommune_nr,
                kommune=kommune_names().get(o.kommune_nr) if o.kommune_nr else None,
                details=o.details,
            ),
        )

    return router
