"""Transit models: route_type → mode (basic and Entur's extended types), StopCall, GTFS midnight."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from byflyt.clock import OSLO
from byflyt.models.transit import StopCall, gtfs_midnight, mode_for_route_type


@pytest.mark.parametrize(
    ("route_type", "mode"),
    [
        # basic GTFS types
        (0, "tram"),
        (1, "metro"),
        (2, "rail"),
        (3, "bus"),
        (4, "ferry"),
        (5, "tram"),
        (6, "other"),
        (7, "other"),
        (8, "other"),
        (11, "bus"),
        (12, "rail"),
        # extended types as Entur uses them
        (100, "rail"),
        (101, "rail"),
        (106, "rail"),
        (117, "rail"),
        (118, "other"),
        (200, "coach"),
        (202, "coach"),
        (209, "coach"),
        (210, "other"),
        (400, "metro"),
        (401, "metro"),
        (405, "metro"),
        (700, "bus"),
        (701, "bus"),
        (714, "bus"),
        (716, "bus"),
        (717, "other"),
        (800, "bus"),
        (900, "tram"),
        (906, "tram"),
        (1000, "ferry"),
        (1012, "ferry"),
        (1021, "ferry"),
        (1100, "air"),
        (1200, "ferry"),
        (1300, "other"),
        (1400, "other"),
        (1500, "taxi"),
        (1507, "taxi"),
        (1700, "other"),
        (-1, "other"),
        (99999, "other"),
    ],
)
def test_mode_for_route_type(route_type: int, mode: str) -> None:
    assert mode_for_route_type(route_type) == mode


def _call(**overrides: object) -> StopCall:
    values: dict[str, object] = {
        "feed": "inn",
        "service_date": date(2025, 10, 26),
        "trip_id": "INN:ServiceJourney:rail_night",
        "route_id": "INN:Line:R10",
        "mode": "rail",
        "stop_id": "NSR:Quay:92004",
        "stop_sequence": 4,
        "kommune_nr": "3413",
        "scheduled": datetime(2025, 10, 26, 23, 35, tzinfo=UTC),
    }
    values.update(overrides)
    return StopCall(**values)


def test_stop_call_key_and_wire_round_trip() -> None:
    call = _call(
        actual=datetime(2025, 10, 27, 0, 37, tzinfo=timezone(timedelta(hours=1))),
        delay_seconds=120,
        vehicle_id="INN:Vehicle:1",
        occupancy="MANY_SEATS_AVAILABLE",
    )
    assert call.key == "inn:2025-10-26:INN:ServiceJourney:rail_night:4"
    assert call.status == "served"
    assert call.actual == datetime(2025, 10, 26, 23, 37, tzinfo=UTC)
    raw = call.to_bytes()
    assert b'"scheduled":"2025-10-26T23:35:00Z"' in raw
    assert b'"service_date":"2025-10-26"' in raw
    assert StopCall.from_bytes(raw) == call


def test_stop_call_validation() -> None:
    assert _call(kommune_nr=301).kommune_nr == "0301"
    assert _call(kommune_nr=None).kommune_nr is None
    with pytest.raises(ValidationError, match="timezone-aware"):
        _call(scheduled=datetime(2025, 10, 26, 23, 35))  # noqa: DTZ001
    with pytest.raises(ValidationError):
        _call(status="late")
    with pytest.raises(ValidationError):
        _call(stop_sequence=-1)
    with pytest.raises(ValidationError):
        _call(mode="spaceship")
    with pytest.raises(ValidationError):
        _call().stop_sequence = 5


@pytest.mark.parametrize(
    ("service_date", "midnight_utc", "local"),
    [
        # An ordinary summer day: local midnight CEST.
        (date(2025, 10, 25), datetime(2025, 10, 24, 22, tzinfo=UTC), "2025-10-25T00:00:00+02:00"),
        # The 25-hour day: noon is 12:00 CET = 11:00Z; minus 12 h = 23:00Z = 01:00 CEST.
        (date(2025, 10, 26), datetime(2025, 10, 25, 23, tzinfo=UTC), "2025-10-26T01:00:00+02:00"),
        # An ordinary winter day: local midnight CET.
        (date(2025, 10, 27), datetime(2025, 10, 26, 23, tzinfo=UTC), "2025-10-27T00:00:00+01:00"),
        # The 23-hour day: noon 12:00 CEST = 10:00Z; minus 12 h = 22:00Z, 23:00 CET the day before.
        (date(2025, 3, 30), datetime(2025, 3, 29, 22, tzinfo=UTC), "2025-03-29T23:00:00+01:00"),
    ],
)
def test_gtfs_midnight_is_noon_minus_twelve_hours(
    service_date: date, midnight_utc: datetime, local: str
) -> None:
    midnight = gtfs_midnight(service_date, OSLO)
    assert midnight == midnight_utc
    assert midnight.tzinfo is UTC
    assert midnight.astimezone(OSLO).isoformat() == local
