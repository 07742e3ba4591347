"""A local server that answers like the Telraam API, from a synthetic dataset.

``POST /v1/reports/traffic`` (``X-Api-Key``) with ``{"level": "segments", "format": "per-hour",
"id", "time_start", "time_end"}`` answers ``{"status_code", "message", "report": [...]}``: one
row per hour the camera saw (end excluded, at most three months), each with ``date`` (UTC),
``uptime`` and the counts per mode and direction *scaled up by 1/uptime*, as Telraam reports
them. ``GET /v1/segments/id/{id}`` and ``POST /v1/reports/traffic_snapshot`` (an ``area``
bounding box) answer GeoJSON feature collections. Run it standalone with
``python -m byflyt.samples.telraam_server``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from byflyt.samples.counters import (
    SYNTHETIC_NOTICE,
    TelraamDataset,
    TelraamHour,
    TelraamSegment,
    telraam_week,
)
from byflyt.samples.json_server import Answer, JsonServer, Request, serve_main

MAX_RANGE = timedelta(days=92)
MODES = ("heavy", "car", "bike", "pedestrian")


def _time(text: Any) -> datetime:
    value = datetime.fromisoformat(str(text).replace(" ", "T"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _feature(segment: TelraamSegment, key: str) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "MultiLineString", "coordinates": [[list(p) for p in segment.line]]},
        "properties": {key: segment.id, "segment_id": segment.id, "name": segment.name},
    }


def _scaled(hour: TelraamHour, mode: str) -> float:
    measured: int = getattr(hour, mode)
    return measured / hour.uptime if hour.uptime > 0 else 0.0


def report_row(segment: TelraamSegment, at: datetime, hour: TelraamHour) -> dict[str, Any]:
    """One ``per-hour`` row: counts scaled to the whole hour, split left/right."""
    row: dict[str, Any] = {
        "instance_id": -1,
        "segment_id": segment.id,
        "date": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "interval": "hourly",
        "uptime": hour.uptime,
    }
    for mode in MODES:
        total = _scaled(hour, mode)
        left = round(total * 0.55, 6)
        row[mode] = total
        row[f"{mode}_lft"] = left
        row[f"{mode}_rgt"] = total - left
    row["v85"] = 38.5
    row["timezone"] = "Europe/Oslo"
    return row


class TelraamServer(JsonServer):
    """The dataset over HTTP in Telraam's shapes."""

    def __init__(
        self,
        dataset: TelraamDataset,
        *,
        api_key: str = "nokkel",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.dataset = dataset
        self.api_key = api_key

    def answer(self, request: Request) -> Answer:
        """Telraam's answers."""
        if request.headers.get("x-api-key") != self.api_key:
            return 403, {"message": "Forbidden"}
        match = re.fullmatch(r"/v1/segments/id/(\d+)", request.path)
        if match and request.method == "GET":
            found = [s for s in self.dataset.segments if s.id == int(match.group(1))]
            if not found:
                return 404, {"status_code": 404, "message": "segment not found"}
            return 200, self._collection(found, "oidn")
        body = request.json()
        if request.path == "/v1/reports/traffic_snapshot" and request.method == "POST":
            return self._snapshot(body)
        if request.path == "/v1/reports/traffic" and request.method == "POST":
            return self._traffic(body)
        return 404, {"message": "Not Found"}

    @staticmethod
    def _collection(segments: list[TelraamSegment], key: str) -> dict[str, Any]:
        return {
            "status_code": 200,
            "message": "ok",
            "type": "FeatureCollection",
            "features": [_feature(s, key) for s in segments],
        }

    def _snapshot(self, body: Any) -> Answer:
        try:
            west, south, east, north = (float(v) for v in str(body["area"]).split(","))
        except (KeyError, TypeError, ValueError):
            return 400, {"status_code": 400, "message": "area must be lon1,lat1,lon2,lat2"}
        inside = [
            s
            for s in self.dataset.segments
            if any(west <= lon <= east and south <= lat <= north for lon, lat in s.line)
        ]
        return 200, self._collection(inside, "segment_id")

    def _traffic(self, body: Any) -> Answer:
        if not isinstance(body, dict):
            return 400, {"status_code": 400, "message": "body must be JSON"}
        if body.get("level") != "segments" or body.get("format") != "per-hour":
            return 400, {"status_code": 400, "message": "level segments, format per-hour"}
        try:
            start, end = _time(body["time_start"]), _time(body["time_end"])
        except (KeyError, ValueError):
            return 400, {"status_code": 400, "message": "time_start/time_end: YYYY-MM-DD HH:MM:SSZ"}
        if end - start > MAX_RANGE:
            return 400, {"status_code": 400, "message": "time range too long (3 months at most)"}
        found = [s for s in self.dataset.segments if str(s.id) == str(body.get("id"))]
        if not found:
            return 404, {"status_code": 404, "message": "segment not found"}
        segment = found[0]
        rows = [
            report_row(segment, at, hour)
            for at, hour in sorted(segment.rows.items())
            if start <= at < end
        ]
        return 200, {"status_code": 200, "message": "ok", "report": rows}


def main(argv: list[str] | None = None) -> None:
    """Serve the synthetic Telraam week until interrupted."""
    serve_main(argv, TelraamServer, telraam_week, 8126, "Telraam (synthetic)", SYNTHETIC_NOTICE)


if __name__ == "__main__":
    main()
