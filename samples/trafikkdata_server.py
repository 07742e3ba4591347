"""A local server that answers like the Trafikkdata GraphQL API, from a synthetic dataset.

It understands the two queries byflyt sends (``trafficRegistrationPoints`` and
``trafficData … byHour``), with arguments as variables or as literals in the query text, and
answers in the API's exact shapes: integer kommune numbers, Europe/Oslo times with offsets,
pages of at most ``page_size`` hours with opaque cursors, GraphQL errors with HTTP 200, and 410
for anything but POST. Faults (429, 503, GraphQL errors, delays, malformed JSON) can be queued
for the next requests. Run it standalone with ``python -m byflyt.samples.trafikkdata_server``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from byflyt.samples import json_server
from byflyt.samples.json_server import Answer, JsonServer, Request
from byflyt.samples.serving import serve_until_interrupted, server_arguments
from byflyt.samples.trafikkdata import (
    HOUR,
    OSLO,
    SYNTHETIC_NOTICE,
    HourValue,
    TrafikkdataDataset,
    TrafikkdataPoint,
    mjosbyen_week,
)

log = logging.getLogger(__name__)

GONE_BODY = b"GET/PUT/DELETE are not supported: send the GraphQL query as JSON in a POST body.\n"


class GraphQLError(Exception):
    """A query the server cannot answer; becomes an ``errors`` body with HTTP 200."""

    def __init__(
        self, message: str, query: str = "", near: str = "", kind: str = "ValidationError"
    ) -> None:
        super().__init__(message)
        self.message, self.kind = message, kind
        offset = max(query.find(near), 0) if near else 0
        line = query.count("\n", 0, offset) + 1
        self.location = {"line": line, "column": offset - query.rfind("\n", 0, offset)}

    def body(self) -> dict[str, Any]:
        """The API's error body."""
        error = {"message": self.message, "locations": [self.location]}
        return {"data": None, "errors": [{**error, "extensions": {"classification": self.kind}}]}


def _argument(query: str, scope: str, name: str, variables: dict[str, Any]) -> Any:
    """The value of argument ``name`` inside ``scope(...)``/``scope:{...}``, or None."""
    match = re.search(rf"\b{scope}\s*:?\s*[({{]([^)}}]*)[)}}]", query)
    if match is None:
        return None
    arg = re.search(rf"(?<![$\w]){name}\s*:\s*(\$\w+|\"[^\"]*\"|\[[^\]]*\]|\w+)", match.group(1))
    if arg is None:
        return None
    text = arg.group(1)
    if text.startswith("$"):
        return variables.get(text[1:])
    if text.startswith('"'):
        return text[1:-1]
    if text.startswith("["):
        return [item.strip().strip('"') for item in text[1:-1].split(",") if item.strip()]
    return None if text == "null" else text


def _time(query: str, name: str, variables: dict[str, Any]) -> datetime:
    value = _argument(query, "byHour", name, variables)
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise GraphQLError(
            f"Argument '{name}' must be a ZonedDateTime with an offset, got {value!r}", query, name
        )
    return parsed


def _cursor(point_id: str, index: int, start: datetime, end: datetime) -> str:
    raw = f"{point_id}|{index}|{start.isoformat()}|{end.isoformat()}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _after_index(cursor: str, point_id: str, start: datetime, end: datetime) -> int:
    """The index of the edge the cursor names; GraphQLError when it is not one of ours."""
    try:
        parts = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        if len(parts) == 4 and parts[0] == point_id:
            index = int(parts[1])
            if index >= 0 and _cursor(point_id, index, start, end) == cursor:
                return index
    except (binascii.Error, UnicodeError, ValueError):
        pass
    raise GraphQLError(f"Invalid cursor {cursor!r} for this query")


def _edge(hour: datetime, value: HourValue) -> dict[str, Any]:
    numbers = None if value.shape == "null_numbers" else {"volume": value.volume}
    total = {"volumeNumbers": numbers, "coverage": {"percentage": value.coverage}}
    start, end = hour.astimezone(OSLO).isoformat(), (hour + HOUR).astimezone(OSLO).isoformat()
    return {"node": {"from": start, "to": end, "total": total}}


def _point_json(point: TrafikkdataPoint) -> dict[str, Any]:
    return {
        "id": point.id,
        "name": point.name,
        "trafficRegistrationType": point.traffic_type,
        "operationalStatus": point.operational_status,
        "location": {
            "coordinates": {"latLon": {"lat": point.lat, "lon": point.lon}},
            "municipality": {"name": point.municipality_name, "number": point.municipality_number},
            "county": {"name": point.county_name, "number": point.county_number},
        },
        "dataTimeSpan": {
            "firstData": point.first_data.astimezone(OSLO).isoformat(),
            "latestData": {"volumeByHour": point.latest_data.astimezone(OSLO).isoformat()},
        },
    }


def _points(dataset: TrafikkdataDataset, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    traffic_type = _argument(query, "searchQuery", "trafficType", variables)
    if traffic_type not in (None, "BICYCLE", "VEHICLE"):
        raise GraphQLError(f"Invalid trafficType {traffic_type!r}", query, "trafficType")
    counties = _argument(query, "searchQuery", "countyNumbers", variables)
    if isinstance(counties, str | int):
        counties = [counties]  # GraphQL coerces a single value to a list
    try:
        wanted = None if counties is None else {int(c) for c in counties}
    except (TypeError, ValueError):
        raise GraphQLError(f"Invalid countyNumbers {counties!r}", query, "countyNumbers") from None
    points = [
        _point_json(p)
        for p in dataset.points
        if traffic_type in (None, p.traffic_type) and (wanted is None or p.county_number in wanted)
    ]
    return {"trafficRegistrationPoints": points}


def _hours(
    dataset: TrafikkdataDataset, query: str, variables: dict[str, Any], page_size: int
) -> dict[str, Any]:
    point_id = _argument(query, "trafficData", "trafficRegistrationPointId", variables)
    if not isinstance(point_id, str) or point_id not in dataset.hours:
        raise GraphQLError(
            f"Traffic registration point {point_id!r} not found", query, "trafficData"
        )
    start, end = _time(query, "from", variables), _time(query, "to", variables)
    after = _argument(query, "byHour", "after", variables)
    first = 0 if after is None else _after_index(str(after), point_id, start, end) + 1
    nodes = dataset.nodes(point_id, start, end)
    page = nodes[first : first + page_size]
    edges = [_edge(hour, value) for hour, value in page]
    last = first + len(page) - 1
    page_info = {
        "hasNextPage": last + 1 < len(nodes),
        "endCursor": _cursor(point_id, last, start, end) if page else None,
    }
    return {"trafficData": {"volume": {"byHour": {"edges": edges, "pageInfo": page_info}}}}


def answer(dataset: TrafikkdataDataset, body: Any, page_size: int = 100) -> dict[str, Any]:
    """The API's JSON answer to a decoded request body (a ``data`` or an ``errors`` body)."""
    fields = body if isinstance(body, dict) else {}
    query, variables = fields.get("query"), fields.get("variables") or {}
    try:
        if not isinstance(query, str) or not isinstance(variables, dict):
            raise GraphQLError("Request body needs a 'query' string and a 'variables' object")
        if any(query.count(a) != query.count(b) for a, b in ("{}", "()", "[]")) or not (
            query.strip().endswith("}")
        ):
            raise GraphQLError("Invalid syntax: unbalanced brackets", query, kind="InvalidSyntax")
        if "trafficRegistrationPoints" in query:
            return {"data": _points(dataset, query, variables)}
        if "trafficData" in query and "byHour" in query:
            return {"data": _hours(dataset, query, variables, page_size)}
        raise GraphQLError("Invalid syntax or unknown field in query", query)
    except GraphQLError as error:
        return error.body()


class Fault(json_server.Fault):
    """The sample servers' faults, and a GraphQL ``errors`` answer with HTTP 200."""

    @classmethod
    def graphql_error(cls, message: str) -> Fault:
        """Answer HTTP 200 with a GraphQL ``errors`` body."""
        return cls("reply", code=200, body=GraphQLError(message).body())


class TrafikkdataServer(JsonServer):
    """The dataset served over HTTP on a background thread; a context manager.

    ``requests`` logs what arrived; ``inject`` queues faults, each consumed by the next POST.
    """

    truncated_body = b'{"data":{"trafficData":{"volume":{"byHour":{"edges":[{"no'

    def __init__(
        self,
        dataset: TrafikkdataDataset,
        host: str = "127.0.0.1",
        port: int = 0,
        page_size: int = 100,
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {page_size}")
        super().__init__(host, port)
        self.page_size = page_size
        self._dataset = dataset

    @property
    def dataset(self) -> TrafikkdataDataset:
        """The dataset being served now."""
        with self._lock:
            return self._dataset

    def set_dataset(self, dataset: TrafikkdataDataset) -> None:
        """Serve another dataset from the next request on (e.g. version 1 → 2)."""
        with self._lock:
            self._dataset = dataset

    def takes_fault(self, request: Request) -> bool:
        """Only a POST takes a fault: every other method is answered 410."""
        return request.method == "POST"

    def answer(self, request: Request) -> Answer:
        """410 for anything but POST; a ``data`` or ``errors`` body for a POSTed query."""
        if request.method != "POST":
            return 410, GONE_BODY
        body = request.json()
        if body is None:
            return 400, GraphQLError("Request body is not JSON", kind="InvalidSyntax").body()
        return 200, answer(self.dataset, body, self.page_size)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve a synthetic dataset until Ctrl-C or SIGTERM; writes the URL on stdout."""
    parser = server_arguments(
        "trafikkdata_server", "Local Trafikkdata API.", 8123, SYNTHETIC_NOTICE
    )
    parser.add_argument(
        "--version", type=int, choices=(1, 2), default=1, help="2 serves the corrected week"
    )
    parser.add_argument("--dataset", type=Path, help="serve this to_json() file instead")
    args = parser.parse_args(argv)
    dataset = (
        TrafikkdataDataset.from_json(args.dataset.read_text("utf-8"))
        if args.dataset
        else mjosbyen_week(args.version)
    )
    server = TrafikkdataServer(dataset, args.host, args.port, args.page_size)
    serve_until_interrupted(server, SYNTHETIC_NOTICE)


if __name__ == "__main__":
    main()
