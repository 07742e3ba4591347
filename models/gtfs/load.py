"""Load a static GTFS zip (Entur's shape) for a region: stops in kommuner, trips, schedules.

Entur's GTFS has ``calendar_dates.txt`` without ``calendar.txt``, ``stop_sequence`` from 0,
quays (``NSR:Quay:n``) under stop places (``NSR:StopPlace:n``), extended route types and extra
columns; all of that is handled here. ``stop_times.txt`` is read in chunks of ``chunk_rows``
with only the needed columns, ids kept as categoricals, so a national feed loads in memory
proportional to what is kept, not to the file.

Times are kept as seconds after the service day's GTFS "midnight", which the GTFS reference
defines as noon minus 12 h in the agency timezone (see
:func:`byflyt.models.transit.gtfs_midnight`).
"""

from __future__ import annotations

import re
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from byflyt.errors import ConfigError, RetriableError
from byflyt.models.geo import KommuneLocator
from byflyt.models.gtfs.checks import FeedReport, FeedUnusable, check_archive
from byflyt.models.gtfs.feed import (
    DEFAULT_TIMEZONE,
    SCHEMA,
    StaticFeed,
    feed_name,
    to_schema,
)
from byflyt.models.kommuner import Region
from byflyt.models.transit import mode_for_route_type
from byflyt.settings import Settings

_TIME = re.compile(r"^\s*(\d{1,3}):([0-5]\d):([0-5]\d)\s*$")
_COLON = ord(":") - ord("0")
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

# Columns read from the zip: (required, optional); no other column is ever parsed.
_READ: dict[str, tuple[list[str], list[str]]] = {
    "stops": (
        ["stop_id"],
        ["stop_name", "stop_lat", "stop_lon", "location_type", "parent_station"],
    ),
    "routes": (["route_id", "route_type"], ["agency_id", "route_short_name", "route_long_name"]),
    "trips": (["trip_id", "route_id", "service_id"], ["direction_id", "trip_short_name"]),
}


def gtfs_seconds(values: pd.Series) -> pd.Series:
    """GTFS ``H:MM:SS`` times (hours may pass 24) as nullable int seconds; blank or bad → NA."""
    text = values.to_numpy(dtype=object, na_value="")
    out = np.full(len(text), -1, dtype=np.int64)
    fast = np.fromiter((len(v) == 8 for v in text), dtype=bool, count=len(text))
    if fast.any():
        # Why not a regex on every row: a national feed has tens of millions of times.
        try:
            raw = np.frombuffer("".join(text[fast]).encode("ascii"), dtype=np.uint8)
        except UnicodeEncodeError:
            fast[:] = False
        else:
            c = raw.reshape(-1, 8).astype(np.int64) - ord("0")
            digits = c[:, [0, 1, 3, 4, 6, 7]]
            good = (c[:, 2] == _COLON) & (c[:, 5] == _COLON) & (c[:, 3] < 6) & (c[:, 6] < 6)
            good &= ((digits >= 0) & (digits <= 9)).all(axis=1)
            secs = (c[:, 0] * 10 + c[:, 1]) * 3600 + (c[:, 3] * 10 + c[:, 4]) * 60
            secs += c[:, 6] * 10 + c[:, 7]
            where = np.flatnonzero(fast)
            out[where[good]] = secs[good]
            fast[where[~good]] = False
    for i in np.flatnonzero(~fast):
        match = _TIME.match(text[i])
        if match:
            out[i] = int(match[1]) * 3600 + int(match[2]) * 60 + int(match[3])
    array = pd.arrays.IntegerArray(out.astype(np.int32), mask=out < 0)
    return pd.Series(array, index=values.index, name=values.name)


def load_gtfs(
    source: Path | str,
    *,
    feed: str,
    region: Region | None,
    locator: KommuneLocator,
    chunk_rows: int = 500_000,
    headers: Mapping[str, str] | None = None,
    max_calls: int = 1000,
    max_uncompressed: int = 8 * 1024**3,
    max_ratio: float = 200.0,
) -> StaticFeed:
    """Load a GTFS zip (a path or an http(s) URL), check it and keep what ``region`` needs.

    A trip is kept when it calls at least once in the region's kommuner, and kept whole, with
    its calls outside the region. ``region=None`` keeps all of Norway. The kept trips' stops
    (with their parent stations and those stations' other quays, where platform changes land),
    routes and service days come along. ``headers`` go with a URL download (Entur asks for
    ``ET-Client-Name``). Rows that break a rule of :mod:`byflyt.models.gtfs.checks` are
    dropped and counted in the feed's ``report``; a zip past ``max_uncompressed`` bytes or
    ``max_ratio``, a malformed feed or one with no trip left is a ConfigError
    (:class:`~byflyt.models.gtfs.checks.FeedUnusable`).
    """
    feed = feed_name(feed)
    with _opened(source, headers or {}) as archive:
        check_archive(archive, max_total=max_uncompressed, max_ratio=max_ratio)
        try:
            static = _load(archive, feed, region, locator, chunk_rows, max_calls)
        except (ValueError, KeyError, zipfile.BadZipFile, EOFError, UnicodeDecodeError) as exc:
            raise FeedUnusable(
                "malformed", f"malformed GTFS feed {source}: {exc}", "check the feed"
            ) from exc
    if static.trips.empty:
        where = f"region {region.key}" if region is not None else "the feed"
        raise FeedUnusable(
            "no_trips",
            f"0 trips kept: no usable trip of {source} calls in {where}",
            "check --region and that the feed serves it (byflyt keeps nothing from it)",
        )
    return static


def load_gtfs_with_settings(
    settings: Settings,
    source: Path | str,
    *,
    feed: str,
    region: Region | None,
    locator: KommuneLocator,
    chunk_rows: int = 500_000,
) -> StaticFeed:
    """:func:`load_gtfs` with the client name and limits of ``settings``, as the commands load."""
    return load_gtfs(
        source,
        feed=feed,
        region=region,
        locator=locator,
        chunk_rows=chunk_rows,
        headers={"ET-Client-Name": settings.client_name},
        max_calls=settings.max_calls_per_journey,
        max_uncompressed=settings.gtfs_max_uncompressed_bytes,
        max_ratio=settings.gtfs_max_compression_ratio,
    )


def _dedupe(frame: pd.DataFrame, key: str, rule: str, report: FeedReport) -> pd.DataFrame:
    duplicated = frame[key].duplicated()
    report.add(rule, int(duplicated.sum()))
    return frame[~duplicated]


def _load(
    archive: zipfile.ZipFile,
    feed: str,
    region: Region | None,
    locator: KommuneLocator,
    chunk_rows: int,
    max_calls: int,
) -> StaticFeed:
    report = FeedReport()
    raw_stops = _read(archive, "stops.txt")
    report.add("duplicate_stop_id", int(raw_stops["stop_id"].duplicated().sum()))
    stops = _place_stops(raw_stops, locator)
    stationary = pd.to_numeric(stops["location_type"], errors="coerce").fillna(0).isin((0, 1))
    report.add("stop_without_coordinates", int((stationary & stops["lat"].isna()).sum()))
    all_routes = _dedupe(_read(archive, "routes.txt"), "route_id", "duplicate_route_id", report)
    service_days = _service_days(archive)
    trips = _dedupe(_read(archive, "trips.txt"), "trip_id", "duplicate_trip_id", report)
    known_route = trips["route_id"].isin(set(all_routes["route_id"]))
    report.add("unknown_route", int((~known_route).sum()))
    known_service = trips["service_id"].isin(set(service_days["service_id"]))
    report.add("unknown_service", int((known_route & ~known_service).sum()))
    trips = trips[known_route & known_service]
    all_trip_ids = set(trips["trip_id"])
    stop_ids = set(stops["stop_id"])
    if region is not None:
        # First pass over stop_times: which trips call in the region at all.
        inside = set(stops.loc[stops["kommune_nr"].isin(region.kommuner), "stop_id"])
        keep: set[str] = set()
        for chunk in _chunks(archive, ["trip_id", "stop_id"], chunk_rows):
            keep.update(chunk.loc[chunk["stop_id"].isin(inside), "trip_id"])
        trips = trips[trips["trip_id"].isin(keep)]
    trip_ids = set(trips["trip_id"])
    columns = ["trip_id", "stop_sequence", "stop_id", "arrival_time", "departure_time"]
    parts = []
    for chunk in _chunks(archive, columns, chunk_rows):
        known_trip = chunk["trip_id"].isin(all_trip_ids)
        report.add("unknown_trip", int((~chunk["trip_id"].isin(all_trip_ids)).sum()))
        known_stop = chunk["stop_id"].isin(stop_ids)
        report.add("unknown_stop", int((known_trip & ~known_stop).sum()))
        chunk = chunk[known_trip & known_stop]
        sequence = pd.to_numeric(chunk["stop_sequence"], errors="coerce")
        report.add("invalid_stop_sequence", int(sequence.isna().sum()))
        parts.append(_stop_times(chunk[sequence.notna()], trip_ids))
    if not parts:
        raise FeedUnusable("no_stop_times", "stop_times.txt has no rows", "give a complete feed")
    stop_times = pd.DataFrame(
        {
            c: union_categoricals([p[c] for p in parts], sort_categories=True)
            if kind == "cat"
            else pd.concat([p[c] for p in parts], ignore_index=True)
            for c, kind in SCHEMA["stop_times"].items()
        }
    ).sort_values(["trip_id", "stop_sequence"], ignore_index=True, kind="stable")
    stop_times = _check_trips(stop_times, max_calls, report)
    kept_trips = set(stop_times["trip_id"].astype("str"))
    trips = trips[trips["trip_id"].isin(kept_trips)]
    used = set(stop_times["stop_id"].astype("str"))
    stations = set(stops.loc[stops["stop_id"].isin(used), "parent_station"].dropna())
    # The stations' other quays too: a call planned at one platform may be served at another.
    used |= stations | set(stops.loc[stops["parent_station"].isin(stations), "stop_id"])
    routes = all_routes[all_routes["route_id"].isin(set(trips["route_id"]))]
    route_type = pd.to_numeric(routes["route_type"], errors="coerce").fillna(-1).astype(int)
    routes = routes.assign(route_type=route_type, mode=[mode_for_route_type(t) for t in route_type])
    service_days = service_days[service_days["service_id"].isin(set(trips["service_id"]))]
    return StaticFeed(
        feed=feed,
        timezone=_agency_timezone(archive),
        region=None if region is None else region.key,
        stops=to_schema(stops[stops["stop_id"].isin(used)], SCHEMA["stops"]),
        routes=to_schema(routes, SCHEMA["routes"]),
        trips=to_schema(trips, SCHEMA["trips"]),
        stop_times=to_schema(stop_times, SCHEMA["stop_times"]),
        service_days=to_schema(service_days, SCHEMA["service_days"]),
        report=report,
    )


def _check_trips(stop_times: pd.DataFrame, max_calls: int, report: FeedReport) -> pd.DataFrame:
    """Drop duplicate (trip, sequence) rows, then trips too long or with times going back.

    ``stop_times`` is sorted by trip and sequence (stable: the first of duplicates first).
    """
    duplicated = stop_times.duplicated(["trip_id", "stop_sequence"])
    report.add("duplicate_stop_time", int(duplicated.sum()))
    stop_times = stop_times[~duplicated]
    trip = stop_times["trip_id"]
    sizes = trip.value_counts()
    too_long = set(sizes.index[sizes > max_calls])
    report.add("too_many_stop_times", len(too_long))
    arrival = stop_times["arrival_seconds"].astype("float64")
    departure = stop_times["departure_seconds"].astype("float64")
    same_trip = trip.eq(trip.shift()).to_numpy()
    # A call must not arrive before the previous call departed, nor depart before it arrived.
    back = same_trip & (arrival.to_numpy() < departure.shift().to_numpy())
    back |= departure.to_numpy() < arrival.to_numpy()
    backwards = set(trip[back].astype("str"))
    report.add("times_backwards", len(backwards - too_long))
    bad = too_long | backwards
    if not bad:
        return stop_times.reset_index(drop=True)
    return stop_times[~trip.astype("str").isin(bad)].reset_index(drop=True)


@contextmanager
def _opened(source: Path | str, headers: Mapping[str, str]) -> Iterator[zipfile.ZipFile]:
    with tempfile.TemporaryDirectory(prefix="byflyt-gtfs-") as tmp:
        path = Path(source)
        if str(source).startswith(("http://", "https://")):
            path = Path(tmp) / "gtfs.zip"
            _download(str(source), path, headers)
        try:
            archive = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise ConfigError("--zip", f"cannot open {source}: {exc}", "give a GTFS zip") from exc
        with archive:
            yield archive


def _download(url: str, path: Path, headers: Mapping[str, str]) -> None:
    try:
        with httpx.stream(
            "GET", url, headers=dict(headers), follow_redirects=True, timeout=60
        ) as r:
            if r.status_code == 429 or r.status_code >= 500:
                raise RetriableError(f"HTTP {r.status_code}", url=url, status=r.status_code)
            if r.status_code >= 400:
                raise ConfigError("--zip", f"{url} answered HTTP {r.status_code}", "check the URL")
            with path.open("wb") as out:
                for block in r.iter_bytes(1 << 20):
                    out.write(block)
    except httpx.HTTPError as exc:
        raise RetriableError(f"GTFS download failed: {exc}", url=url) from exc


def _member(archive: zipfile.ZipFile, name: str, *, required: bool = True) -> str | None:
    # Some producers zip a folder; match on the file name.
    member = next((n for n in archive.namelist() if n.rsplit("/", 1)[-1] == name), None)
    if member is None and required:
        raise ConfigError("--zip", f"the GTFS zip has no {name}", "give a complete GTFS feed")
    return member


def _csv(handle: IO[bytes], columns: set[str], **kwargs: Any) -> Any:
    frames = pd.read_csv(
        handle,
        dtype=str,
        usecols=lambda c: c.strip() in columns,
        encoding="utf-8-sig",
        keep_default_na=False,
        na_values=[""],
        **kwargs,
    )
    return frames if "chunksize" in kwargs else frames.rename(columns=str.strip)


def _read(archive: zipfile.ZipFile, name: str) -> pd.DataFrame:
    required, optional = _READ[name.removesuffix(".txt")]
    with archive.open(str(_member(archive, name))) as handle:
        frame: pd.DataFrame = _csv(handle, {*required, *optional})
    _require(frame, required, name)
    for column in optional:
        if column not in frame.columns:
            frame[column] = pd.Series(pd.NA, index=frame.index, dtype="str")
    return frame


def _require(frame: pd.DataFrame, columns: list[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError("--zip", f"{name} lacks columns {missing}", "give a valid GTFS feed")


def _chunks(archive: zipfile.ZipFile, columns: list[str], rows: int) -> Iterator[pd.DataFrame]:
    with (
        archive.open(str(_member(archive, "stop_times.txt"))) as handle,
        _csv(handle, set(columns), chunksize=rows) as reader,
    ):
        for chunk in reader:
            chunk = chunk.rename(columns=str.strip)
            _require(chunk, columns, "stop_times.txt")
            yield chunk


def _stop_times(chunk: pd.DataFrame, trip_ids: set[str]) -> pd.DataFrame:
    chunk = chunk[chunk["trip_id"].isin(trip_ids)]
    arrival = gtfs_seconds(chunk["arrival_time"])
    departure = gtfs_seconds(chunk["departure_time"])
    return pd.DataFrame(
        {
            "trip_id": chunk["trip_id"].astype("category"),
            "stop_sequence": pd.to_numeric(chunk["stop_sequence"]).astype(np.int32),
            "stop_id": chunk["stop_id"].astype("category"),
            # GTFS allows one of the two to be blank; the call then has one instant.
            "arrival_seconds": arrival.fillna(departure),
            "departure_seconds": departure.fillna(arrival),
        }
    )


def _place_stops(stops: pd.DataFrame, locator: KommuneLocator) -> pd.DataFrame:
    stops = stops.drop_duplicates("stop_id").reset_index(drop=True)
    lat = pd.to_numeric(stops["stop_lat"], errors="coerce")
    lon = pd.to_numeric(stops["stop_lon"], errors="coerce")
    # Quays without coordinates take their stop place's.
    by_id = pd.DataFrame({"lat": lat.to_numpy(), "lon": lon.to_numpy()}, index=stops["stop_id"])
    lat = lat.fillna(stops["parent_station"].map(by_id["lat"]))
    lon = lon.fillna(stops["parent_station"].map(by_id["lon"]))
    ids = stops["stop_id"].tolist()
    kommune = pd.Series(locator.locate_many(lat, lon, ids), index=stops.index, dtype="str")
    # An override of a stop place applies to its quays unless a quay has its own.
    from_parent = stops["parent_station"].map(dict(locator.overrides))
    inherit = from_parent.notna() & ~stops["stop_id"].isin(set(locator.overrides))
    location_type = pd.to_numeric(stops["location_type"], errors="coerce").fillna(0)
    return stops.assign(
        lat=lat, lon=lon, location_type=location_type, kommune_nr=kommune.mask(inherit, from_parent)
    )


def _agency_timezone(archive: zipfile.ZipFile) -> ZoneInfo:
    name = DEFAULT_TIMEZONE
    member = _member(archive, "agency.txt", required=False)
    if member is not None:
        with archive.open(member) as handle:
            zones = _csv(handle, {"agency_timezone"}).get("agency_timezone", pd.Series())
        name = str(zones.dropna().iloc[0]).strip() if zones.notna().any() else name
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            "--zip", f"agency_timezone {name!r} is unknown", "fix agency.txt"
        ) from exc


def _service_days(archive: zipfile.ZipFile) -> pd.DataFrame:
    """(service_id, service_date) of every running day: calendar.txt, then its exceptions."""
    calendar = _member(archive, "calendar.txt", required=False)
    exceptions = _member(archive, "calendar_dates.txt", required=calendar is None)
    frames: list[pd.DataFrame] = []
    if calendar is not None:
        with archive.open(calendar) as handle:
            cal = _csv(handle, {"service_id", "start_date", "end_date", *_WEEKDAYS})
        _require(cal, ["service_id", "start_date", "end_date", *_WEEKDAYS], "calendar.txt")
        for row in cal.itertuples(index=False):
            days = pd.date_range(_day(row.start_date), _day(row.end_date), freq="D")
            flags = np.array([str(getattr(row, d)).strip() == "1" for d in _WEEKDAYS])
            running = days[flags[days.day_of_week]]
            frames.append(pd.DataFrame({"service_id": row.service_id, "day": running.date}))
    removed = pd.DataFrame({"service_id": pd.Series(dtype="str"), "day": pd.Series(dtype=object)})
    if exceptions is not None:
        with archive.open(exceptions) as handle:
            dates = _csv(handle, {"service_id", "date", "exception_type"})
        _require(dates, ["service_id", "date", "exception_type"], "calendar_dates.txt")
        day = pd.to_datetime(dates["date"].str.strip(), format="%Y%m%d").dt.date
        dates = dates.assign(day=day)
        kind = dates["exception_type"].str.strip()
        frames.append(dates.loc[kind == "1", ["service_id", "day"]])
        removed = dates.loc[kind == "2", ["service_id", "day"]]
    days = pd.concat([f for f in frames if len(f)] or [removed.iloc[:0]], ignore_index=True)
    days = days.merge(removed, how="left", indicator=True)
    days = days[days["_merge"] == "left_only"].drop_duplicates(["service_id", "day"])
    days = days.sort_values(["service_id", "day"], ignore_index=True)
    return pd.DataFrame({"service_id": days["service_id"], "service_date": days["day"]})


def _day(text: str) -> pd.Timestamp:
    return pd.to_datetime(text.strip(), format="%Y%m%d")
