"""The analysts' read-only HTTP API under ``/api/v1``.

Regions, kommuner, points, hourly values, the index and outages. Lists are paged with ``limit``
and ``offset``; every page carries ``total`` and ``links`` (also sent as an RFC 8288 ``Link``
header; :mod:`byflyt.web.pages`). ``/hourly`` answers CSV with the exact columns of
``byflyt query hourly --format csv`` when asked with ``Accept: text/csv``. Times are UTC
(``2025-10-26T01:00:00Z``); parameters take what ``byflyt query`` takes
(:mod:`byflyt.web.params`). Errors are RFC 7807 problem details (:mod:`byflyt.web.problems`).
The answers' shapes are in :mod:`byflyt.web.schemas`.
"""

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
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
from byflyt.queries.outages import area_outages, outage_record
from byflyt.settings import Settings
from byflyt.store import Store
from byflyt.web.pages import CSV, links, page, page_body, page_headers, paged, wants_csv
from byflyt.web.params import (
    KommuneParam,
    ModeParam,
    OffsetParam,
    RegionParam,
    kommuner_for,
    limit_query,
    time_range,
)
from byflyt.web.problems import PROBLEM_RESPONSES, bad_parameter, store_unavailable
from byflyt.web.reuse import Reuse
from byflyt.web.schemas import (
    HourlyItem,
    IndexAnswer,
    KommuneItem,
    OutageItem,
    Page,
    PointItem,
    RegionItem,
)
from byflyt.web.security import token_checker

_T = TypeVar("_T")


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
    api = Api(settings, store)
    for add_routes in (_lists, _hourly, _index, _outages):
        add_routes(router, api)
    return router


class Api:
    """What the routes share: the settings, the store and the index parts reused per kommune."""

    def __init__(self, settings: Settings, store: Callable[[], Store]) -> None:
        self.settings = settings
        self.limit = limit_query(settings.serve_max_page_size)
        """The ``limit`` parameter's rule: ``Annotated[int, api.limit]``."""
        self._store = store
        self._matched: Reuse[MatchedPoints] = Reuse(
            settings.serve_index_reuse_seconds, max_entries=1024
        )

    def read(self, what: Callable[[Store], _T]) -> _T:
        """``what(store)``; a store that cannot answer is a 503 problem."""
        try:
            return what(self._store())
        except (RetriableError, SQLAlchemyError) as exc:
            raise store_unavailable(exc) from exc

    def kommuner(self, region: str | None, kommune: list[str] | None) -> list[str] | None:
        """The kommuner a request names (None: all)."""
        return kommuner_for(region, kommune, self.settings.regions_file)

    def index_of(
        self, mode: str, kommuner: list[str], period: Period, min_hours: int
    ) -> tuple[IndexResult, float]:
        """The index and the age of its oldest part: each kommune's points are reused."""

        def part_of(nr: str) -> MatchedPoints:
            return self.read(lambda s: matched_points(s, mode=mode, kommuner=[nr], period=period))

        parts, age = [], 0.0
        for nr in kommuner:
            part, part_age = self._matched.get((mode, nr, period), partial(part_of, nr))
            parts.append(part)
            age = max(age, part_age)
        keys = [key for part in parts for key in part.kommuner]
        if len(keys) != len(set(keys)):  # a point whose rows name two kommuner: read it whole
            whole = self.read(
                lambda s: load_index(
                    s, mode=mode, kommuner=kommuner, period=period, min_hours=min_hours
                )
            )
            return whole, 0.0
        result = self.read(
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


def _lists(router: APIRouter, api: Api) -> None:
    """``/regions``, ``/kommuner`` and ``/points``: what there is to ask about."""
    regions_file = api.settings.regions_file

    @router.get("/regions", response_model=Page[RegionItem], summary="Regions")
    def regions(
        request: Request, limit: Annotated[int, api.limit] = 100, offset: OffsetParam = 0
    ) -> Response:
        """The regions byflyt knows (built in, plus ``BYFLYT_REGIONS_FILE``)."""
        known = sorted(load_regions(regions_file).values(), key=lambda r: r.key)
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
        limit: Annotated[int, api.limit] = 500,
        offset: OffsetParam = 0,
    ) -> Response:
        """Kommuner (2024 numbering) with the regions each belongs to; ``region`` narrows."""
        chosen = api.kommuner(region, None)
        all_regions = load_regions(regions_file)
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
        limit: Annotated[int, api.limit] = 500,
        offset: OffsetParam = 0,
    ) -> Response:
        """Counting points in the store, by source and point id."""
        chosen = api.kommuner(region, kommune)
        found = api.read(lambda s: s.query_points(kommuner=chosen, mode=mode))
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


def _hourly(router: APIRouter, api: Api) -> None:
    """``/hourly``: kommune-hour values, JSON or CSV."""

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
        limit: Annotated[int, api.limit] = 1000,
        offset: OffsetParam = 0,
    ) -> Response:
        """Kommune-hours in ``[from, to)`` with coverage and sources; CSV with Accept: text/csv."""
        start, end = time_range(from_, to, api.settings.serve_max_range_days)
        chosen = api.kommuner(region, kommune)
        rows, total = api.read(
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
                headers=page_headers(links(request, total, limit, offset), total),
            )
        return page(request, records, total, limit, offset)


def _index(router: APIRouter, api: Api) -> None:
    """``/index``: an area's index against a year earlier, with its points."""

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
        limit: Annotated[int, api.limit] = 500,
        offset: OffsetParam = 0,
    ) -> Response:
        """The area index with its 95 % CI, n points and matched hours, and each point's index."""
        try:
            chosen_period = parse_period(period)
        except (ValueError, OverflowError) as exc:
            raise bad_parameter("period", str(exc)) from None
        region = region or api.settings.region
        chosen = api.kommuner(region, kommune)
        if chosen is None:
            raise bad_parameter("region", "which area? give region (e.g. mjosbyen) or kommune")
        name = region if region and not kommune else ", ".join(chosen)
        needed = min_hours if min_hours is not None else api.settings.index_min_hours
        result, age = api.index_of(mode, chosen, chosen_period, needed)
        rows = point_records(result)
        page_links = links(request, len(rows), limit, offset)
        body: dict[str, Any] = {
            **index_summary(result),
            "area": area_record(result, name),
            "points": page_body(
                rows[offset : offset + limit], len(rows), limit, offset, page_links
            ),
        }
        headers = {**page_headers(page_links, len(rows)), "Age": str(int(age))}
        return JSONResponse(body, headers=headers)


def _outages(router: APIRouter, api: Api) -> None:
    """``/outages``: periods when a counter or a feed was silent, flat or short."""

    @router.get("/outages", response_model=Page[OutageItem], summary="Outages")
    def outages(
        request: Request,
        region: RegionParam = None,
        kommune: KommuneParam = None,
        open_only: Annotated[
            bool, Query(alias="open", description="Only outages that have not ended.")
        ] = False,
        limit: Annotated[int, api.limit] = 500,
        offset: OffsetParam = 0,
    ) -> Response:
        """Counter and feed outages by start time (feeds have no kommune and always show)."""
        chosen = api.kommuner(region, kommune)
        found = api.read(lambda s: area_outages(s, chosen, open_only=open_only))
        now = datetime.now(UTC)
        return paged(
            request,
            found,
            limit,
            offset,
            lambda o: OutageItem(**outage_record(o, now)),
        )
