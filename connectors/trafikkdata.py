"""Statens vegvesen's Trafikkdata API (GraphQL): bicycle counting points and their hourly counts.

Points come from ``trafficRegistrationPoints`` for the region's counties, kept when they count
bicycles in one of the region's kommuner; each point's hours from ``trafficData … byHour``,
page by page. Times arrive with +01:00/+02:00 offsets and become UTC hours, so October's
repeated local hour is two distinct hours. Every hour of the polled window between the point's
first and latest data that has no usable node is emitted with volume None and coverage 0:
missing, never zero. Hours after the latest data are not: the source lags 2–3 hours.

Live polls cover ``[min(checkpoint, now − 48 h), now)`` because the source corrects recent
hours; a point's checkpoint is the end of the last hour it delivered. Data: © Statens vegvesen,
NLOD licence (attribution required).
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from functools import partial
from typing import Any

from pydantic import ValidationError

from byflyt.connectors.base import Call, Discovery, PollResult, Record, Window
from byflyt.connectors.counters import HOUR, HttpCounterConnector, fetched
from byflyt.connectors.http import (
    HTTPRetriableError,
    SourceError,
    check_endpoint,
    json_body,
    raw_json,
    send,
)
from byflyt.errors import RejectedInput
from byflyt.metrics import Metrics, default_metrics
from byflyt.models import codec_counts
from byflyt.models.base import hour_floor, iso_z
from byflyt.models.counts import CountObservation, CountPoint
from byflyt.models.envelope import Rejected
from byflyt.models.kommuner import get_region, kommune_names
from byflyt.settings import Settings
from byflyt.topics import BIKE_COUNTS, BIKE_POINTS

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://trafikkdata-api.atlas.vegvesen.no/"
SOURCE = "trafikkdata"
# GraphQL error classifications that mean the query itself is wrong: retrying cannot help.
FATAL_CLASSIFICATIONS = frozenset({"ValidationError", "InvalidSyntax", "OperationNotSupported"})

POINTS_QUERY = """
query BicyclePoints($counties: [Int!]) {
  trafficRegistrationPoints(searchQuery: {trafficType: BICYCLE, countyNumbers: $counties}) {
    id
    name
    trafficRegistrationType
    operationalStatus
    location {
      coordinates { latLon { lat lon } }
      municipality { name number }
      county { number }
    }
    dataTimeSpan { firstData latestData { volumeByHour } }
  }
}
"""

HOURS_QUERY = """
query Hours($id: String!, $from: ZonedDateTime!, $to: ZonedDateTime!, $after: String) {
  trafficData(trafficRegistrationPointId: $id) {
    volume {
      byHour(from: $from, to: $to, after: $after) {
        edges { node { from to total { volumeNumbers { volume } coverage { percentage } } } }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
}
"""


def graphql_data(body: Any, url: str) -> dict[str, Any]:
    """The ``data`` of a GraphQL answer; ``errors`` become a fatal or a retriable error.

    A query the server finds invalid (``ValidationError``, ``InvalidSyntax``) fails for good;
    any other GraphQL error (a timeout behind the API, a fetch failure) is worth retrying.
    """
    if not isinstance(body, dict):
        raise RejectedInput("the answer is not a JSON object", source=SOURCE, raw=raw_json(body))
    errors = body.get("errors")
    if errors:
        listed = errors if isinstance(errors, list) else [errors]
        messages = "; ".join(str(e.get("message", e) if isinstance(e, dict) else e) for e in listed)
        kinds = {
            str((e.get("extensions") or {}).get("classification"))
            for e in listed
            if isinstance(e, dict)
        }
        fatal = sorted(kinds & FATAL_CLASSIFICATIONS)
        if fatal:
            message = f"POST {url}: GraphQL {fatal[0]}: {messages}"
            raise SourceError(message, url=url, status=200, status_class="graphql")
        raise HTTPRetriableError(
            f"POST {url}: GraphQL error: {messages}",
            url=url,
            status=200,
            status_class="graphql",
            retry_after=None,
        )
    data = body.get("data")
    if not isinstance(data, dict):
        raise RejectedInput("the answer has no data object", source=SOURCE, raw=raw_json(body))
    return data


def _dig(data: dict[str, Any], *path: str, expect: type = dict) -> Any:
    """``data[path[0]][path[1]]…`` of type ``expect``; anything else: the answer is unreadable."""
    value: Any = data
    for name in path:
        value = value.get(name) if isinstance(value, dict) else None
    if not isinstance(value, expect):
        where = ".".join(path)
        raise RejectedInput(
            f"the answer has no {where} {expect.__name__}", source=SOURCE, raw=raw_json(data)
        )
    return value


def _page(data: dict[str, Any]) -> tuple[list[Any], str | None]:
    """One ``byHour`` page: its nodes, and the cursor of the next page (None on the last)."""
    by_hour = _dig(data, "trafficData", "volume", "byHour")
    edges, info = by_hour.get("edges") or [], by_hour.get("pageInfo") or {}
    if not isinstance(edges, list) or not isinstance(info, dict):
        raise RejectedInput(
            "byHour has no edges list or pageInfo", source=SOURCE, raw=raw_json(data)
        )
    nodes = [edge.get("node") if isinstance(edge, dict) else edge for edge in edges]
    if not info.get("hasNextPage"):
        return nodes, None
    cursor = info.get("endCursor")
    if not isinstance(cursor, str) or not cursor:
        raise RejectedInput("hasNextPage without endCursor", source=SOURCE, raw=raw_json(data))
    return nodes, cursor


def _field(value: Any, name: str) -> Any:
    """``value[name]`` of a JSON object that may be null (None then)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"expected an object holding {name!r}, got {raw_json(value)[:80]}")
    return value.get(name)


def _aware(text: Any) -> datetime:
    """An ISO 8601 time with an offset (``fromisoformat`` keeps it: 02:00+02:00 ≠ 02:00+01:00)."""
    value = datetime.fromisoformat(text) if isinstance(text, str) else None
    if value is None or value.utcoffset() is None:
        raise ValueError(f"time {text!r} is not ISO 8601 with an offset")
    return value


def _reason(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
        )
    return str(exc)


class TrafikkdataConnector(HttpCounterConnector[CountPoint]):
    """Bicycle points of a region and their hourly counts, from the Trafikkdata GraphQL API.

    ``backfill`` polls that window for every point (checkpoints only move forward, and only when
    the window starts at or before them, so a backfill never opens a gap); without it, each
    poll is live from the checkpoint, or from ``start``, or from ``now − lookback``. ``clock``
    gives "now" (tests inject one to run live windows over past data). These go in ``**polling``
    (:class:`~byflyt.connectors.counters.HttpCounterConnector`).
    """

    name = "trafikkdata"
    source = SOURCE

    def __init__(
        self,
        settings: Settings,
        *,
        region: str,
        endpoint: str = DEFAULT_ENDPOINT,
        metrics: Metrics | None = None,
        **polling: Any,
    ) -> None:
        check_endpoint(endpoint, DEFAULT_ENDPOINT)
        super().__init__(settings, **polling)
        self.region = get_region(region, settings.regions_file)
        self.endpoint = endpoint
        self.metrics = metrics or default_metrics()
        self._newest: dict[str, datetime] = {}

    def item_id(self, item: CountPoint) -> str:
        """The point id."""
        return item.point_id

    # -- requests ----------------------------------------------------------------------------
    def _query(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = send(
            self._client, "POST", self.endpoint, json={"query": query, "variables": variables}
        )
        return graphql_data(json_body(response, "POST", self.endpoint), self.endpoint)

    # -- points ------------------------------------------------------------------------------
    def discover(self, call: Call) -> Discovery[CountPoint]:
        """The region's bicycle points (produced to ``bike.points``); bad entries rejected."""
        counties = sorted({int(c) for c in self.region.counties})
        entries = call(partial(self._points, counties), "points")
        discovery: Discovery[CountPoint] = Discovery(items=[])
        for entry in entries:
            try:
                point, traffic_type = self._point(entry)
            except ValueError as exc:
                discovery.rejected.append(
                    self.reject("invalid_point", _reason(exc), raw_json(entry))
                )
                continue
            # The search asks for bicycle points; the type is checked again in case it is ignored.
            if traffic_type not in (None, "BICYCLE") or point.kommune_nr not in self.region:
                continue
            discovery.items.append(point)
            discovery.records.append(Record.of(BIKE_POINTS, point))
        log.info("%s: %d bicycle points in %s", SOURCE, len(discovery.items), self.region.name)
        return discovery

    def _points(self, counties: list[int]) -> list[Any]:
        data = self._query(POINTS_QUERY, {"counties": counties})
        return list(_dig(data, "trafficRegistrationPoints", expect=list))

    def _point(self, entry: Any) -> tuple[CountPoint, str | None]:
        location = _field(entry, "location")
        lat_lon = _field(_field(location, "coordinates"), "latLon")
        span = _field(entry, "dataTimeSpan")
        kommune = _field(_field(location, "municipality"), "number")
        if kommune is None:
            raise ValueError(
                f"point {str(_field(entry, 'id'))[:64]!r} has no municipality "
                "(location.municipality.number is missing)"
            )
        point = CountPoint(
            source=SOURCE,
            point_id=_field(entry, "id"),
            name=_field(entry, "name") or "",
            kommune_nr=kommune,
            mode="bicycle",
            lat=_field(lat_lon, "lat"),
            lon=_field(lat_lon, "lon"),
            first_data=_field(span, "firstData"),
            latest_data=_field(_field(span, "latestData"), "volumeByHour"),
            operational_status=_field(entry, "operationalStatus"),
        )
        if point.kommune_nr not in kommune_names():
            raise ValueError(
                f"point {point.point_id!r} is in kommune {point.kommune_nr}, which is no "
                "Norwegian kommune (2024 numbering)"
            )
        return point, _field(entry, "trafficRegistrationType")

    # -- hours -------------------------------------------------------------------------------
    def poll(self, item: CountPoint, position: str | None, call: Call) -> PollResult:
        """Every hour of the point's window: counted, null, or missing (emitted as None)."""
        checkpoint = self._position(item, position)
        window = self.hours.window(checkpoint)
        retrieved_at = self.clock()
        observations: list[CountObservation] = []
        rejected: list[Rejected] = []
        for node in self._nodes(item, window, call):
            try:
                observation = self._observation(item, node, retrieved_at)
                if not window.since <= observation.start < window.until:
                    raise ValueError(
                        f"hour {iso_z(observation.start)} is outside the window asked for "
                        f"[{iso_z(window.since)}, {iso_z(window.until)})"
                    )
                observations.append(observation)
            except ValueError as exc:
                raw = raw_json(node)
                rejected.append(
                    self.reject("invalid_node", _reason(exc), raw, point_id=item.point_id)
                )
        received = {hour_floor(o.start) for o in observations}
        missing = [
            CountObservation(
                source=SOURCE,
                point_id=item.point_id,
                kommune_nr=item.kommune_nr,
                mode="bicycle",
                start=hour,
                end=hour + HOUR,
                volume=None,
                coverage=0.0,
                retrieved_at=retrieved_at,
            )
            for hour in self._expected_hours(item, window)
            if hour not in received
        ]
        # The checkpoint follows what the source delivered (null hours too), so a counter that
        # publishes empty hours does not make every live poll reach further back.
        delivered = max((o.end for o in observations), default=None)
        counted = max((o.start for o in observations if o.volume is not None), default=None)
        self._note_newest(item, counted)
        moves = delivered is not None and (
            checkpoint is None or window.since <= checkpoint < delivered
        )
        return PollResult(
            records=[
                # Keyed by kommune, in the compact wire format: the aggregation reads each
                # record where it lands, with no repartition hop.
                Record(BIKE_COUNTS, o.kommune_nr, codec_counts.encode(o))
                for o in sorted(observations + missing, key=lambda o: o.start)
            ]
            + [
                fetched(
                    SOURCE, item.point_id, item.kommune_nr, "bicycle", *window.span, retrieved_at
                )
            ],
            rejected=rejected,
            checkpoint=iso_z(delivered) if moves and delivered is not None else None,
            last_data=counted,
            counts=Counter(observations=len(observations), missing_hours=len(missing)),
        )

    def _position(self, item: CountPoint, position: str | None) -> datetime | None:
        try:
            return None if position is None else _aware(position).astimezone(UTC)
        except ValueError:
            log.warning("%s: ignoring unreadable checkpoint %r", item.key, position)
            return None

    def _nodes(self, item: CountPoint, window: Window, call: Call) -> list[Any]:
        """Every node of the window, following ``endCursor`` while ``hasNextPage``."""
        nodes: list[Any] = []
        after: str | None = None
        page = 0
        while True:
            page += 1
            variables = {
                "id": item.point_id,
                "from": window.since.isoformat(),
                "to": window.until.isoformat(),
                "after": after,
            }
            what = f"hours of {item.point_id} (page {page})"
            page_nodes, after = call(partial(self._hours_page, variables), what)
            nodes.extend(page_nodes)
            if after is None:
                return nodes

    def _hours_page(self, variables: dict[str, Any]) -> tuple[list[Any], str | None]:
        return _page(self._query(HOURS_QUERY, variables))

    def _observation(self, item: CountPoint, node: Any, retrieved_at: datetime) -> CountObservation:
        total = _field(node, "total")
        if total is None:
            raise ValueError("node has no total")
        coverage = _field(_field(total, "coverage"), "percentage")
        return CountObservation(
            source=SOURCE,
            point_id=item.point_id,
            kommune_nr=item.kommune_nr,
            mode="bicycle",
            start=_aware(_field(node, "from")),
            end=_aware(_field(node, "to")),
            volume=_field(_field(total, "volumeNumbers"), "volume"),
            coverage=0.0 if coverage is None else coverage,
            retrieved_at=retrieved_at,
        )

    @staticmethod
    def _expected_hours(item: CountPoint, window: Window) -> list[datetime]:
        """The window's hours from the point's first data to its latest (an hour start)."""
        if item.first_data is None or item.latest_data is None:
            return []
        first = max(window.since, hour_floor(item.first_data))
        stop = min(window.until, hour_floor(item.latest_data) + HOUR)
        return [first + n * HOUR for n in range((stop - first) // HOUR)]

    def _note_newest(self, item: CountPoint, counted: datetime | None) -> None:
        previous = self._newest.get(item.point_id)
        if counted is None or (previous is not None and counted <= previous):
            return
        self._newest[item.point_id] = counted
        gauge = self.metrics.point_last_data.labels(SOURCE, item.point_id, item.kommune_nr)
        gauge.set(counted.timestamp())
