"""The trip-updates wire format: version 2 round-trips, version 1 (the old JSON) decodes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import msgspec
import pytest
from pydantic import ValidationError

from byflyt.models import codec_trips
from byflyt.models.transit import CallState, TripState

AT = datetime(2025, 10, 27, 7, 30, tzinfo=UTC)
STATE = TripState(
    feed="inn",
    snapshot_at=AT,
    service_date=date(2025, 10, 27),
    trip_id="INN:ServiceJourney:1-2-3",
    route_id="INN:Line:150",
    mode="bus",
    status="scheduled",
    vehicle_id="INN:VehicleRef:9001",
    occupancy="MANY_SEATS_AVAILABLE",
    calls=[
        CallState(
            stop_sequence=1,
            stop_id="NSR:Quay:101",
            kommune_nr="3403",
            scheduled=AT - timedelta(minutes=5),
            delay_seconds=90,
            actual=AT - timedelta(minutes=3, seconds=30),
        ),
        CallState(
            stop_sequence=2,
            stop_id="NSR:Quay:202",
            kommune_nr=None,
            scheduled=AT + timedelta(minutes=5),
            realtime="no_data",
        ),
        CallState(
            stop_sequence=3,
            stop_id="NSR:Quay:303",
            kommune_nr="3411",
            scheduled=AT + timedelta(minutes=9),
            delay_seconds=-30,
            realtime="skipped",
        ),
    ],
)
# A record exactly as version 1 producers wrote it (TripState's JSON before this codec).
V1 = (
    b'{"feed":"inn","snapshot_at":"2025-10-27T07:30:00Z","service_date":"2025-10-27",'
    b'"trip_id":"INN:ServiceJourney:1-2-3","route_id":"INN:Line:150","mode":"bus",'
    b'"status":"scheduled","vehicle_id":"INN:VehicleRef:9001",'
    b'"occupancy":"MANY_SEATS_AVAILABLE","calls":['
    b'{"stop_sequence":1,"stop_id":"NSR:Quay:101","kommune_nr":"3403",'
    b'"scheduled":"2025-10-27T07:25:00Z","delay_seconds":90,"actual":"2025-10-27T07:26:30Z",'
    b'"realtime":"scheduled"},'
    b'{"stop_sequence":2,"stop_id":"NSR:Quay:202","kommune_nr":null,'
    b'"scheduled":"2025-10-27T07:35:00Z","delay_seconds":null,"actual":null,'
    b'"realtime":"no_data"},'
    b'{"stop_sequence":3,"stop_id":"NSR:Quay:303","kommune_nr":"3411",'
    b'"scheduled":"2025-10-27T07:39:00Z","delay_seconds":-30,"actual":null,'
    b'"realtime":"skipped"}]}'
)


def test_version_2_round_trips_and_is_compact() -> None:
    raw = codec_trips.encode(STATE)
    assert raw[0] >> 4 == 0x9  # a msgpack array: version 2
    record = codec_trips.decode(raw)
    assert codec_trips.to_state(record) == STATE
    assert record.key == STATE.key == "inn:2025-10-27:INN:ServiceJourney:1-2-3"
    assert TripState.from_bytes(raw) == STATE  # the edges read version 2 through the model
    assert len(raw) < len(STATE.model_dump_json()) / 2


def test_version_1_json_still_decodes_to_the_same_record() -> None:
    assert STATE.model_dump_json().encode() == V1
    assert codec_trips.decode(V1) == codec_trips.decode(codec_trips.encode(STATE))
    assert TripState.from_bytes(V1) == STATE
    head = codec_trips.decode_head(V1)
    assert (head.key, head.settled_since) == (STATE.key, None)
    # What only the model accepts (an offset, an integer kommune) is read as the model reads it.
    lax = V1.replace(b'"3403"', b"3403").replace(b'07:30:00Z"', b'08:30:00+01:00"')
    assert codec_trips.decode(lax) == codec_trips.decode(V1)


def test_the_head_reads_a_record_without_its_calls_and_restamps_it() -> None:
    record = codec_trips.decode(codec_trips.encode(STATE))
    head = codec_trips.head_of(record)
    later = AT + timedelta(seconds=10)
    again = msgspec.structs.replace(head, snapshot_at=later, settled_since=AT)
    decoded = codec_trips.decode(codec_trips.encode(again))
    assert (decoded.snapshot_at, decoded.settled_since) == (later, AT)
    assert decoded.calls == record.calls
    assert codec_trips.decode_head(codec_trips.encode(again)) == again
    # A consumer passes over a settled record by its key alone.
    assert codec_trips.settled_key(codec_trips.encode(again)) == STATE.key
    assert codec_trips.settled_key(codec_trips.encode(head)) is None
    assert codec_trips.settled_key(V1) is None
    assert codec_trips.settled_key(b"\x9c\x02") is None  # a broken record is for decode to reject


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (V1.replace(b'07:30:00Z"', b'07:30:00"'), "timezone"),
        (V1.replace(b'"stop_sequence":1', b'"stop_sequence":-1'), "greater than or equal to 0"),
        (V1.replace(b'"mode":"bus"', b'"mode":"zeppelin"'), "mode"),
        (b"not json {", "JSON"),
    ],
)
def test_version_1_rejections_keep_the_models_reasons(raw: bytes, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        codec_trips.decode(raw)


def test_final_sequences_follow_final_calls() -> None:
    from byflyt.streams.transit_calls import final_calls

    record = codec_trips.decode(codec_trips.encode(STATE))
    expected = {c.stop_sequence for c, _, _ in final_calls(record, {})}
    assert codec_trips.final_sequences(record) == expected == {1, 3}
    gone = msgspec.structs.replace(record, status="cancelled")
    assert codec_trips.final_sequences(gone) == {
        c.stop_sequence for c, _, _ in final_calls(gone, {})
    }


def test_a_broken_version_2_record_is_a_value_error_that_says_where() -> None:
    raw = codec_trips.encode(STATE)
    with pytest.raises(ValueError, match="version 2"):
        codec_trips.decode(raw[:-3])
    bad = codec_trips.Trip(
        feed="inn",
        snapshot_at=AT,
        service_date=date(2025, 10, 27),
        trip_id="t",
        route_id="r",
        mode="bus",
        calls=[codec_trips.Call(1, "NSR:Quay:1", "03O1", AT)],
    )
    with pytest.raises(ValueError, match=r"regex .*\[11\]\[0\]\[2\]"):  # calls[0].kommune_nr
        codec_trips.decode(codec_trips.encode(bad))
    with pytest.raises(ValueError, match="empty"):
        codec_trips.decode_head(b"")
