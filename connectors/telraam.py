"""Telraam: residents' camera counters on road segments, cycling and walking per hour.

``POST /v1/reports/traffic`` (``X-Api-Key``) with ``level: segments``, ``format: per-hour`` gives
one row per hour the camera saw (``time_end`` excluded), at most three months a request.
Telraam counts only in daylight and scales each hour's counts up by 1/``uptime`` (an
extrapolation to the whole hour); byflyt keeps the *measured* count, ``round(reported ×
uptime)``, with coverage = ``uptime × 100``. An hour with ``uptime`` 0, or without a row between
the first and last row of the window (darkness), is missing, never zero.

A segment is one point per mode (``<segment>-bicycle``, ``<segment>-pedestrian``), placed in a
kommune by a point on its line. ``--segments`` names them; ``--region`` finds them with
``/v1/reports/traffic_snapshot`` over the region's bounding box.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import shapely
from shapely.geometry import shape

from byflyt.connectors.base import Call, Discovery, PollResult, Record, Window
from byflyt.connectors.counters import (
    HOUR,
    HttpCounterConnector,
    count_record,
    fetched,
    hours_between,
    is_duplicate,
    point_id,
    read_checkpoint,
)
from byflyt.connectors.http import base_url, json_body, raw_json, send
from byflyt.errors import ConfigError, RejectedInput
from byflyt.models.base import Mode, hour_floor, iso_z
from byflyt.models.counts import CountObservation, CountPoint
from byflyt.models.envelope import Rejected
from byflyt.models.geo import load_boundaries
from byflyt.models.kommuner import Region, get_region
from byflyt.settings import Settings
from byflyt.topics import BIKE_POINTS

log = logging.getLogger(__name__)

SOURCE = "telraam"
DEFAULT_ENDPOINT = "https://telraam-api.net/"
MAX_SPAN = timedelta(days=90)
MODES: dict[Mode, str] = {"bicycle": "bike", "pedestrian": "pedestrian"}


def measured(reported: float, uptime: float) -> int:
    """What the camera counted: the reported (scaled-up) count times uptime, half rounded up."""
    return math.floor(reported * uptime + 0.5)


@dataclass(frozen=True)
class Segment:
    """A Telraam road segment placed in a kommune."""

    id: str
    name: str
    lat: float
    lon: float
    kommune_nr: str


class TelraamConnector(HttpCounterConnector[Segment]):
    """Telraam segments (listed, or those of a region) and their measured hourly counts.

    ``**polling``: the polling options of :class:`~byflyt.connectors.counters.HttpCounterConnector`.
    """

    name = "telraam"
    source = SOURCE

    def __init__(
        self,
        settings: Settings,
        *,
        segments: list[str] | None = None,
        region: str | None = None,
        endpoint: str = DEFAULT_ENDPOINT,
        **polling: Any,
    ) -> None:
        if settings.telraam_api_key is None:
            raise ConfigError("BYFLYT_TELRAAM_API_KEY", "is not set", "set your Telraam API key")
        if not segments and not region:
            raise ConfigError("--segments", "neither --segments nor --region is given", "give one")
        if segments and any(not s.isdigit() for s in segments):
            raise ConfigError("--segments", f"{','.join(segments)!r}", "give segment ids: 1,2,3")
        key = settings.telraam_api_key.get_secret_value()
        super().__init__(settings, {"X-Api-Key": key}, **polling)
        self.endpoint = base_url(endpoint, DEFAULT_ENDPOINT)
        self.segments = segments or []
        self.region: Region | None = get_region(region, settings.regions_file) if region else None

    def item_id(self, item: Segment) -> str:
        """The segment id."""
        return item.id

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        url = self.endpoint + path
        response = (
            send(self._client, method, url, json=body) if body else send(self._client, method, url)
        )
        return json_body(response, method, url)

    # -- segments ----------------------------------------------------------------------------
    def discover(self, call: Call) -> Discovery[Segment]:
        """The segments (one ``bike.points`` record per mode); unusable ones rejected."""
        features: list[Any] = []
        if self.segments:
            for sid in self.segments:
                body = call(
                    partial(self._request, "GET", f"v1/segments/id/{sid}"), f"segment {sid}"
                )
                features += _features(body)
        else:
            body = call(
                partial(self._request, "POST", "v1/reports/traffic_snapshot", self._area()),
                "segments",
            )
            features += _features(body)
        discovery: Discovery[Segment] = Discovery(items=[])
        seen: set[str] = set()
        for feature in features:
            try:
                segment = self._segment(feature)
            except (ValueError, TypeError, KeyError) as exc:
                discovery.rejected.append(self.reject("invalid_point", str(exc), raw_json(feature)))
                continue
            if segment.id in seen or (
                self.region is not None and segment.kommune_nr not in self.region
            ):
                continue
            seen.add(segment.id)
            modes = [
                m for m in MODES if not is_duplicate(self.settings, SOURCE, point_id(segment.id, m))
            ]
            if not modes:
                continue
            discovery.items.append(segment)
            for mode in modes:
                point = CountPoint(
                    source=SOURCE,
                    point_id=point_id(segment.id, mode),
                    name=segment.name,
                    kommune_nr=segment.kommune_nr,
                    mode=mode,
                    lat=segment.lat,
                    lon=segment.lon,
                )
                discovery.records.append(Record.of(BIKE_POINTS, point))
        log.info("%s: %d segments", SOURCE, len(discovery.items))
        return discovery

    def _area(self) -> dict[str, str]:
        assert self.region is not None
        boundaries = load_boundaries(self.settings.kommuner_geojson)
        mask = [str(k) in self.region for k in boundaries.kommune_nrs]
        west, south, east, north = shapely.total_bounds(boundaries.geometries[mask])
        return {"time": "live", "contents": "minimal", "area": f"{west},{south},{east},{north}"}

    def _segment(self, feature: Any) -> Segment:
        properties = feature.get("properties") or {}
        sid = properties.get("segment_id") or properties.get("oidn")
        if sid is None:
            raise ValueError("a segment has no segment_id or oidn")
        where = shape(feature["geometry"]).representative_point()
        kommune = self.locate(where.y, where.x)
        if kommune is None:
            raise ValueError(f"segment {sid} at {where.y:.5f}, {where.x:.5f} is in no kommune")
        name = str(properties.get("name") or f"Telraam {sid}")
        return Segment(str(sid), name, where.y, where.x, kommune)

    # -- counts ------------------------------------------------------------------------------
    def poll(self, item: Segment, position: str | None, call: Call) -> PollResult:
        """Every hour with a row, and the dark hours between, per mode."""
        checkpoint = read_checkpoint(position, SOURCE)
        window = self.hours.window(checkpoint)
        retrieved_at = self.clock()
        rows: dict[datetime, Any] = {}
        rejected: list[Rejected] = []
        since = window.since
        while since < window.until:
            chunk = Window(since, min(window.until, since + MAX_SPAN))
            body = {
                "level": "segments",
                "format": "per-hour",
                "id": item.id,
                "time_start": chunk.since.strftime("%Y-%m-%d %H:%M:%SZ"),
                "time_end": chunk.until.strftime("%Y-%m-%d %H:%M:%SZ"),
            }
            what = f"traffic of {item.id} from {iso_z(chunk.since)}"
            answer = call(partial(self._request, "POST", "v1/reports/traffic", body), what)
            report = answer.get("report") if isinstance(answer, dict) else None
            if not isinstance(report, list):
                raise RejectedInput(
                    "the answer has no report array", source=SOURCE, raw=raw_json(answer)
                )
            for row in report:
                try:
                    hour = self._hour(row, chunk)
                except (ValueError, TypeError, AttributeError) as exc:
                    rejected.append(
                        self.reject("invalid_row", str(exc), raw_json(row), point_id=item.id)
                    )
                    continue
                rows[hour] = row
            since = chunk.until
        observations = self._observations(item, rows, retrieved_at)
        delivered = max(rows, default=None)
        end = None if delivered is None else delivered + HOUR
        moves = end is not None and (checkpoint is None or window.since <= checkpoint < end)
        counted = max((o.start for o in observations if o.volume is not None), default=None)
        asked = [
            fetched(SOURCE, point_id(item.id, m), item.kommune_nr, m, *window.span, retrieved_at)
            for m in MODES
            if not is_duplicate(self.settings, SOURCE, point_id(item.id, m))
        ]
        return PollResult(
            records=[count_record(o) for o in observations] + asked,
            rejected=rejected,
            checkpoint=iso_z(end) if moves and end is not None else None,
            last_data=counted,
            counts=Counter(
                observations=len(observations),
                missing_hours=sum(1 for o in observations if o.volume is None),
            ),
        )

    @staticmethod
    def _hour(row: Any, chunk: Window) -> datetime:
        start = datetime.fromisoformat(str(row["date"]))
        if start.tzinfo is None:
            raise ValueError(f"date {row['date']!r} has no offset")
        start = start.astimezone(UTC)
        if start != hour_floor(start) or not chunk.since <= start < chunk.until:
            raise ValueError(f"date {row['date']!r} is not an hour of the range asked for")
        uptime = row.get("uptime")
        if not isinstance(uptime, int | float) or not 0 <= uptime <= 1:
            raise ValueError(f"uptime {uptime!r} is not a share between 0 and 1")
        for name in MODES.values():
            value = row.get(name)
            if not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} {value!r} is not a non-negative number")
        return start

    def _observations(
        self, item: Segment, rows: dict[datetime, Any], retrieved_at: datetime
    ) -> list[CountObservation]:
        if not rows:
            return []
        hours = hours_between(min(rows), max(rows) + HOUR)
        result = []
        for mode, name in MODES.items():
            if is_duplicate(self.settings, SOURCE, point_id(item.id, mode)):
                continue
            for hour in hours:
                row = rows.get(hour)
                uptime = float(row["uptime"]) if row is not None else 0.0
                result.append(
                    CountObservation(
                        source=SOURCE,
                        point_id=point_id(item.id, mode),
                        kommune_nr=item.kommune_nr,
                        mode=mode,
                        start=hour,
                        end=hour + HOUR,
                        volume=measured(float(row[name]), uptime) if row and uptime > 0 else None,
                        coverage=round(uptime * 100, 2),
                        retrieved_at=retrieved_at,
                    )
                )
        return result


def _features(body: Any) -> list[Any]:
    features = body.get("features") if isinstance(body, dict) else None
    if not isinstance(features, list):
        raise RejectedInput("the answer has no features array", source=SOURCE, raw=raw_json(body))
    return features
