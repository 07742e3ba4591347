"""GTFS static loading on the synthetic Entur-style feed: region, times, DST, placement, CLI.

Instants are worked out by hand from the GTFS rule "times count from noon minus 12 h of the
service day" in Europe/Oslo (see test_transit_models for GTFS midnight itself).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from byflyt.cli.gtfs import gtfs_app, stops_app
from byflyt.errors import ConfigError, RetriableError
from byflyt.models.geo import KommuneLocator
from byflyt.models.gtfs import StaticFeed, feed_dir, gtfs_seconds, load_gtfs
from byflyt.models.kommuner import Region, get_region
from byflyt.samples.gtfs import (
    AGENCY_NAME,
    EXPECTED_KOMMUNE,
    SERVICE_DATES,
    STOP_PLACES,
    SYNTHETIC_STOPS,
    SYNTHETIC_TRIPS,
    TRIP_SERVICE,
    TRIP_STOPS,
    write_synthetic_gtfs,
)
from byflyt.settings import load_settings
from tests.helpers import QuietHandler, http_server

SAT, SUN, MON = SERVICE_DATES
T = SYNTHETIC_TRIPS
S = SYNTHETIC_STOPS


def utc(year: int, month: int, day: int, hour: int, minute: int) -> pd.Timestamp:
    return pd.Timestamp(datetime(year, month, day, hour, minute, tzinfo=UTC))


@pytest.fixture(scope="module")
def gtfs_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_gtfs(tmp_path_factory.mktemp("gtfs") / "inn.zip")


@pytest.fixture(scope="module")
def mjosbyen() -> Region:
    return get_region("mjosbyen")


@pytest.fixture(scope="module")
def regional(gtfs_zip: Path, locator: KommuneLocator, mjosbyen: Region) -> StaticFeed:
    return load_gtfs(gtfs_zip, feed="inn", region=mjosbyen, locator=locator)


@pytest.fixture(scope="module")
def national(gtfs_zip: Path, locator: KommuneLocator) -> StaticFeed:
    return load_gtfs(gtfs_zip, feed="inn", region=None, locator=locator)


def rewrite(source: Path, target: Path, changes: dict[str, str | None]) -> Path:
    """A copy of a zip with members replaced (text) or removed (None)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            if name not in changes:
                new.writestr(name, old.read(name))
        for name, text in changes.items():
            if text is not None:
                new.writestr(name, text)
    return target


def test_the_synthetic_feed_has_entur_quirks(gtfs_zip: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(gtfs_zip) as archive:
        names = set(archive.namelist())
        stops = archive.read("stops.txt").decode()
        stop_times = archive.read("stop_times.txt").decode()
        agency = archive.read("agency.txt").decode()
    assert "calendar_dates.txt" in names
    assert "calendar.txt" not in names
    assert "vehicle_type" in stops.splitlines()[0]
    assert "boarding_type" in stop_times.splitlines()[0]
    assert "(syntetisk)" in agency
    assert AGENCY_NAME in agency
    assert ",24:35:00," in stop_times
    same = write_synthetic_gtfs(tmp_path / "same.zip")
    other = write_synthetic_gtfs(tmp_path / "other.zip", seed=8)
    assert same.read_bytes() == gtfs_zip.read_bytes()
    assert other.read_bytes() != gtfs_zip.read_bytes()


def test_region_keeps_crossing_trips_whole(regional: StaticFeed, national: StaticFeed) -> None:
    assert set(national.trips["trip_id"]) == set(T.values())
    assert set(regional.trips["trip_id"]) == set(T.values()) - {T["outside"]}
    for role in ("crossing", "crossing_reverse"):
        calls = regional.trip_calls(T[role], SAT)
        assert tuple(calls["stop_id"]) == TRIP_STOPS[T[role]]
        assert list(calls["stop_sequence"]) == list(range(len(TRIP_STOPS[T[role]])))
    crossing = regional.trip_calls(T["crossing"], MON)
    assert list(crossing["kommune_nr"].fillna("-")) == ["3407", "-", "3443", "3446"]
    regional_stops = set(regional.stops["stop_id"])
    assert S["jaren_bus"] in regional_stops
    assert STOP_PLACES["jaren"] in regional_stops
    assert S["kongsvinger_bus"] not in regional_stops
    assert "INN:Line:340" not in set(regional.routes["route_id"])
    assert regional.region == "mjosbyen"
    assert national.region is None


def test_stops_are_placed_in_kommuner(national: StaticFeed) -> None:
    placed = dict(zip(national.stops["stop_id"], national.stops["kommune_nr"], strict=True))
    for stop_id, kommune in EXPECTED_KOMMUNE.items():
        assert (placed[stop_id] if pd.notna(placed[stop_id]) else None) == kommune, stop_id
    quay = national.stops.set_index("stop_id").loc[S["lillehammer_bus"]]
    assert (quay["lat"], quay["lon"]) == (61.1150, 10.4620)  # inherited from its stop place
    assert placed[S["morokulien_bus"]] == "3416"  # snapped across the border
    unknown = national.unknown_stops()
    assert list(unknown.columns) == ["stop_id", "stop_name", "lat", "lon"]
    assert set(unknown["stop_id"]) == {S["hunndalen_bus"], STOP_PLACES["hunndalen"]}
    assert "vehicle_type" not in national.stops.columns


def test_routes_trips_and_calendar(national: StaticFeed) -> None:
    modes = dict(zip(national.routes["route_id"], national.routes["mode"], strict=True))
    assert modes == {
        "INN:Line:R10": "rail",
        "INN:Line:R10B": "bus",
        "INN:Line:150": "bus",
        "INN:Line:5": "bus",
        "INN:Line:130": "bus",
        "INN:Line:340": "bus",
        "INN:Line:M1": "ferry",
    }
    assert dict(zip(national.trips["trip_id"], national.trips["service_id"], strict=True)) == (
        TRIP_SERVICE
    )
    assert national.service_dates("INN:DayType:Alle") == list(SERVICE_DATES)
    assert national.service_dates("INN:DayType:Sondag") == [SUN]
    assert national.service_dates("nope") == []
    assert national.date_range() == (SAT, MON)
    assert str(national.timezone) == "Europe/Oslo"


def test_times_past_midnight_stay_on_their_service_date(national: StaticFeed) -> None:
    night = national.stop_times[national.stop_times["trip_id"] == T["rail_night"]]
    assert list(night["arrival_seconds"])[-1] == 24 * 3600 + 35 * 60
    saturday = national.trip_calls(T["rail_night"], SAT)
    # 23:40 CEST on Saturday = 21:40Z; 24:35:00 = 00:35 CEST on Sunday = 22:35Z Saturday.
    assert saturday["scheduled_departure"].iloc[0] == utc(2025, 10, 25, 21, 40)
    assert saturday["scheduled_arrival"].iloc[-1] == utc(2025, 10, 25, 22, 35)
    assert set(saturday["service_date"]) == {SAT}
    sunday_calls = national.scheduled_calls(SUN)
    sunday_night = sunday_calls[sunday_calls["trip_id"] == T["rail_night"]]
    # Sunday's run: GTFS midnight 2025-10-25T23:00Z; 23:40 → 22:40Z, 24:35 → 23:35Z (00:35 CET).
    assert sunday_night["scheduled_departure"].iloc[0] == utc(2025, 10, 26, 22, 40)
    assert sunday_night["scheduled_arrival"].iloc[-1] == utc(2025, 10, 26, 23, 35)
    assert set(sunday_calls["service_date"]) == {SUN}


def test_the_25_hour_day_gives_exact_utc_instants(national: StaticFeed) -> None:
    # Service day 2025-10-26: noon CET = 11:00Z, GTFS midnight = 23:00Z on the 25th (01:00 CEST).
    night_bus = national.trip_calls(T["night_bus_dst"], SUN)
    # 01:30:00 after GTFS midnight = 00:30Z = 02:30 CEST, the first 02:30 of the night.
    assert night_bus["scheduled_departure"].iloc[0] == utc(2025, 10, 26, 0, 30)
    assert night_bus["scheduled_arrival"].iloc[-1] == utc(2025, 10, 26, 0, 52)
    assert national.trip_calls(T["night_bus_dst"], SAT).empty
    # After the change clock time and GTFS time agree again: 06:10 = 06:10 CET = 05:10Z.
    morning = {d: national.trip_calls(T["rail_morning"], d) for d in SERVICE_DATES}
    assert morning[SAT]["scheduled_departure"].iloc[0] == utc(2025, 10, 25, 4, 10)  # CEST
    assert morning[SUN]["scheduled_departure"].iloc[0] == utc(2025, 10, 26, 5, 10)
    assert morning[MON]["scheduled_departure"].iloc[0] == utc(2025, 10, 27, 5, 10)
    calls = national.scheduled_calls(SUN)
    assert str(calls["scheduled_arrival"].dt.tz) == "UTC"
    assert list(calls.columns) == [
        "service_date",
        "trip_id",
        "route_id",
        "mode",
        "stop_id",
        "stop_sequence",
        "kommune_nr",
        "scheduled_arrival",
        "scheduled_departure",
    ]
    sunday_trips = {
        t for t, s in TRIP_SERVICE.items() if s in ("INN:DayType:Alle", "INN:DayType:Sondag")
    }
    assert set(calls["trip_id"]) == sunday_trips
    assert len(calls) == sum(len(TRIP_STOPS[t]) for t in sunday_trips)


def test_chunked_loading_gives_the_same_feed(
    gtfs_zip: Path, locator: KommuneLocator, mjosbyen: Region, regional: StaticFeed
) -> None:
    small = load_gtfs(gtfs_zip, feed="inn", region=mjosbyen, locator=locator, chunk_rows=3)
    huge = load_gtfs(gtfs_zip, feed="inn", region=mjosbyen, locator=locator, chunk_rows=10**9)
    for name in ("stops", "routes", "trips", "stop_times", "service_days"):
        pd.testing.assert_frame_equal(getattr(small, name), getattr(huge, name))
        pd.testing.assert_frame_equal(getattr(small, name), getattr(regional, name))


def test_override_csv_wins(gtfs_zip: Path, tmp_path: Path, mjosbyen: Region) -> None:
    overrides = tmp_path / "overrides.csv"
    overrides.write_text(
        "stop_id,kommune_nr\n"
        f"{STOP_PLACES['hunndalen']},3407\n"  # a stop place: its quays follow
        f"{S['kongsvinger_bus']},3403\n",  # moved into the region: its trip is kept
        "utf-8",
    )
    locator = KommuneLocator.from_file(overrides=overrides)
    feed = load_gtfs(gtfs_zip, feed="inn", region=mjosbyen, locator=locator)
    placed = dict(zip(feed.stops["stop_id"], feed.stops["kommune_nr"], strict=True))
    assert placed[S["hunndalen_bus"]] == "3407"
    assert placed[S["kongsvinger_bus"]] == "3403"
    assert placed[S["morokulien_bus"]] == "3416"
    assert feed.unknown_stops().empty
    assert T["outside"] in set(feed.trips["trip_id"])


def test_calendar_txt_alone_and_with_exceptions(
    gtfs_zip: Path, tmp_path: Path, locator: KommuneLocator
) -> None:
    calendar = (
        "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\n"
        "INN:DayType:Alle,1,1,1,1,1,1,1,20251025,20251027\n"
        "INN:DayType:Lordag,0,0,0,0,0,1,0,20251020,20251102\n"
    )
    only = rewrite(
        gtfs_zip, tmp_path / "cal.zip", {"calendar.txt": calendar, "calendar_dates.txt": None}
    )
    feed = load_gtfs(only, feed="x", region=None, locator=locator)
    assert feed.service_dates("INN:DayType:Alle") == list(SERVICE_DATES)
    assert feed.service_dates("INN:DayType:Lordag") == [date(2025, 10, 25), date(2025, 11, 1)]
    assert feed.service_dates("INN:DayType:Sondag") == []
    exceptions = (
        "service_id,date,exception_type\n"
        "INN:DayType:Alle,20251026,2\n"
        "INN:DayType:Sondag,20251026,1\n"
    )
    both = rewrite(
        gtfs_zip,
        tmp_path / "both.zip",
        {"calendar.txt": calendar, "calendar_dates.txt": exceptions},
    )
    feed = load_gtfs(both, feed="x", region=None, locator=locator)
    assert feed.service_dates("INN:DayType:Alle") == [SAT, MON]
    assert feed.service_dates("INN:DayType:Sondag") == [SUN]


def test_save_and_load_round_trip(national: StaticFeed, tmp_path: Path) -> None:
    target = national.save(tmp_path / "gtfs" / "inn")
    assert (target / "manifest.json").is_file()
    again = StaticFeed.load(target)
    assert (again.feed, again.region, again.timezone) == (national.feed, None, national.timezone)
    for name in ("stops", "routes", "trips", "stop_times", "service_days"):
        pd.testing.assert_frame_equal(getattr(again, name), getattr(national, name))
    pd.testing.assert_frame_equal(again.scheduled_calls(SUN), national.scheduled_calls(SUN))
    with pytest.raises(ConfigError, match="byflyt gtfs load"):
        StaticFeed.load(tmp_path / "nothing")


def test_gtfs_seconds() -> None:
    values = pd.Series(
        ["25:10:00", "7:05:00", " 07:05:00", "", None, "bad", "100:00:00", "24:60:00", "ab:cd:ef"],
        dtype="str",
    )
    assert gtfs_seconds(values).tolist() == [
        90600,
        25500,
        25500,
        pd.NA,
        pd.NA,
        pd.NA,
        360000,
        pd.NA,
        pd.NA,
    ]


def test_broken_feeds_are_config_errors(
    gtfs_zip: Path, tmp_path: Path, locator: KommuneLocator
) -> None:
    with pytest.raises(ConfigError, match="--zip"):
        load_gtfs(tmp_path / "missing.zip", feed="x", region=None, locator=locator)
    not_zip = tmp_path / "not.zip"
    not_zip.write_text("hello", "utf-8")
    with pytest.raises(ConfigError, match="cannot open"):
        load_gtfs(not_zip, feed="x", region=None, locator=locator)
    no_stops = rewrite(gtfs_zip, tmp_path / "a.zip", {"stops.txt": None})
    with pytest.raises(ConfigError, match=r"no stops\.txt"):
        load_gtfs(no_stops, feed="x", region=None, locator=locator)
    no_calendar = rewrite(gtfs_zip, tmp_path / "b.zip", {"calendar_dates.txt": None})
    with pytest.raises(ConfigError, match="calendar"):
        load_gtfs(no_calendar, feed="x", region=None, locator=locator)
    bad_times = rewrite(gtfs_zip, tmp_path / "c.zip", {"stop_times.txt": "trip_id,stop_id\nx,y\n"})
    with pytest.raises(ConfigError, match=r"stop_times\.txt lacks"):
        load_gtfs(bad_times, feed="x", region=None, locator=locator)


class _Handler(QuietHandler):
    """Serves the synthetic zip at /gtfs.zip, 503 at /busy, 404 elsewhere; records headers."""

    body = b""
    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        _Handler.seen.append(self.headers.get("ET-Client-Name"))
        status, body = {"/gtfs.zip": (200, self.body), "/busy": (503, b"busy")}.get(
            self.path, (404, b"not found")
        )
        self.reply(status, body)


@pytest.fixture
def server(gtfs_zip: Path) -> Iterator[str]:
    _Handler.body = gtfs_zip.read_bytes()
    _Handler.seen = []
    with http_server(_Handler) as url:
        yield url


def test_load_from_a_url(server: str, locator: KommuneLocator, national: StaticFeed) -> None:
    headers = {"ET-Client-Name": "byflyt-test"}
    feed = load_gtfs(
        f"{server}/gtfs.zip", feed="inn", region=None, locator=locator, headers=headers
    )
    pd.testing.assert_frame_equal(feed.stop_times, national.stop_times)
    assert _Handler.seen == ["byflyt-test"]
    with pytest.raises(ConfigError, match="HTTP 404"):
        load_gtfs(f"{server}/nope.zip", feed="inn", region=None, locator=locator)
    with pytest.raises(RetriableError) as info:
        load_gtfs(f"{server}/busy", feed="inn", region=None, locator=locator)
    assert info.value.status == 503


# -- command line ------------------------------------------------------------------------------
@pytest.fixture
def cli_env(clean_env: Path) -> dict[str, str]:
    return {"BYFLYT_DATA_DIR": str(clean_env / "data")}


def cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(gtfs_app, name="gtfs")
    app.add_typer(stops_app, name="stops")
    return app


def cli_ok(env: dict[str, str], *args: str) -> str:
    """``byflyt ARGS`` through the gtfs and stops commands alone; it must succeed."""
    result = CliRunner().invoke(cli(), list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_load_and_unknown_stops(
    gtfs_zip: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    args = ["gtfs", "load", "--feed", "inn", "--zip", str(gtfs_zip), "--region", "mjosbyen"]
    output = cli_ok(cli_env, *args)
    assert "Mjøsbyen" in output
    assert "stops        32 (30 placed, 2 unplaced)" in output
    assert "trips        11 kept" in output
    assert "service days 2025-10-25 – 2025-10-27 (3 dates)" in output
    saved = tmp_path / "data" / "gtfs" / "inn"
    assert StaticFeed.load(saved).region == "mjosbyen"

    assert cli_ok(cli_env, "stops", "unknown", "--feed", "inn").splitlines() == [
        "stop_id,stop_name,lat,lon",
        f"{STOP_PLACES['hunndalen']},Hunndalen,10.643,60.774",
        f"{S['hunndalen_bus']},Hunndalen,10.6431,60.7741",
    ]


def test_feed_names_are_case_insensitive(
    gtfs_zip: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    load = ["gtfs", "load", "--feed", "INN", "--zip", str(gtfs_zip), "--region", "mjosbyen"]
    assert "feed inn: Mjøsbyen" in cli_ok(cli_env, *load)
    gtfs_dir = tmp_path / "data" / "gtfs"
    assert [p.name for p in gtfs_dir.iterdir()] == ["inn"]
    settings = load_settings(data_dir=tmp_path / "data")
    # `ingest siri-et --dataset INN` (and --feed Inn) open the same folder and feed name.
    for spelling in ("INN", "Inn", "inn"):
        assert feed_dir(settings, spelling) == gtfs_dir / "inn"
    assert StaticFeed.load(feed_dir(settings, "INN")).feed == "inn"
    unknown = cli_ok(cli_env, "stops", "unknown", "--feed", "Inn")
    assert unknown.startswith("stop_id,stop_name,lat,lon\n")

    # A feed saved upper case by an earlier byflyt is still found under any spelling.
    (gtfs_dir / "inn").rename(gtfs_dir / "INN")
    assert feed_dir(settings, "inn") == gtfs_dir / "INN"
    assert StaticFeed.load(feed_dir(settings, "inn")).feed == "inn"

    never_loaded = CliRunner().invoke(cli(), ["stops", "unknown", "--feed", "vy"], env=cli_env)
    assert never_loaded.exit_code == 2
    assert "no static GTFS feed 'vy'" in never_loaded.output
    assert "(loaded: INN)" in never_loaded.output


def test_cli_region_defaults_and_errors(gtfs_zip: Path, cli_env: dict[str, str]) -> None:
    runner = CliRunner()
    load = ["gtfs", "load", "--feed", "inn", "--zip", str(gtfs_zip)]
    result = runner.invoke(cli(), load, env=cli_env)
    assert result.exit_code == 0, result.output
    assert "all of Norway" in result.output
    assert "trips        12 kept" in result.output
    with_region = {**cli_env, "BYFLYT_REGION": "mjosbyen"}
    assert "trips        11 kept" in runner.invoke(cli(), load, env=with_region).output
    everything = runner.invoke(cli(), [*load, "--all-norway"], env=with_region)
    assert "trips        12 kept" in everything.output

    bad_name = runner.invoke(
        cli(), ["gtfs", "load", "--feed", "../x", "--zip", str(gtfs_zip)], env=cli_env
    )
    assert bad_name.exit_code == 2
    assert "--feed" in bad_name.output
    missing = str(Path(cli_env["BYFLYT_DATA_DIR"]) / "no-such.geojson")
    no_geo = runner.invoke(cli(), load, env={**cli_env, "BYFLYT_KOMMUNER_GEOJSON": missing})
    assert no_geo.exit_code == 2
    assert "BYFLYT_KOMMUNER_GEOJSON" in no_geo.output
    # Empty means unset: the shipped boundaries.
    empty = runner.invoke(cli(), load, env={**cli_env, "BYFLYT_KOMMUNER_GEOJSON": ""})
    assert empty.exit_code == 0, empty.output
    unknown_region = runner.invoke(cli(), [*load, "--region", "atlantis"], env=cli_env)
    assert unknown_region.exit_code == 2
    assert "mjosbyen" in unknown_region.output
    never_loaded = runner.invoke(cli(), ["stops", "unknown", "--feed", "vy"], env=cli_env)
    assert never_loaded.exit_code == 2
    assert "byflyt gtfs load" in never_loaded.output
