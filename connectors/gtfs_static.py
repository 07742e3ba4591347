"""Load a GTFS static feed (Entur's shape) for a region: stops in kommuner, trips, schedules.

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

import json
import re
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import IO, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from byflyt.connectors.gtfs_checks import FeedReport, FeedUnusable, check_archive
from byflyt.errors import ConfigError, RetriableError
from byflyt.models.geo import KommuneLocator
from byflyt.models.kommuner import Region
from byflyt.models.transit import gtfs_midnight, mode_for_route_type
from byflyt.settings import Settings

DEFAULT_TIMEZONE = "Europe/Oslo"
FORMAT_VERSION = 1
_TIME = re.compile(r"^\s*(\d{1,3}):([0-5]\d):([0-5]\d)\s*$")
_COLON = ord(":") - ord("0")
_FEED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def _columns(spec: str) -> dict[str, str]:
    return {name: kind or "str" for name, _, kind in (p.partition(":") for p in spec.split())}


# Tables of a StaticFeed, their columns and types: str (default), cat, int, Int32, float, date.
SCHEMA: dict[str, dict[str, str]] = {
    "stops": _columns(
        "stop_id stop_name lat:float lon:float location_type:int parent_station kommune_nr"
    ),
    "routes": _columns("route_id agency_id route_short_name route_long_name route_type:int mode"),
    "trips": _columns("trip_id route_id service_id direction_id trip_short_name"),
    "stop_times": _columns(
        "trip_id:cat stop_sequence:int stop_id:cat arrival_seconds:Int32 departure_seconds:Int32"
    ),
    "service_days": _columns("service_id service_date:date"),
}

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


@dataclass(frozen=True)
class TripPlan:
    """One trip's static calls on one service date, as plain values.

    The real-time connectors resolve every trip of every snapshot against its plan, so it is
    built without pandas and kept per trip and date (see :meth:`StaticFeed.trip_plan`).
    Times are aware UTC instants, None where the feed gives no time.
    """

    route_id: str
    stops: tuple[str, ...]
    sequences: tuple[int, ...]
    arrivals: tuple[datetime | None, ...]
    departures: tuple[datetime | None, ...]


# Plans kept per feed before the cache starts afresh: a national day has ~30 000 trips.
_PLAN_CACHE_MAX = 200_000


@dataclass
class StaticFeed:
    """A region's slice of a GTFS feed: stops placed in kommuner, trips, schedules, calendar.

    ``stop_times`` are sorted by trip and sequence and hold seconds after GTFS midnight
    (``arrival_seconds``/``departure_seconds``); :meth:`scheduled_calls` turns them into UTC
    instants for one service date. ``region`` is the region key, None for all of Norway.
    """

    feed: str
    timezone: ZoneInfo
    region: str | None
    stops: pd.DataFrame
    routes: pd.DataFrame
    trips: pd.DataFrame
    stop_times: pd.DataFrame
    service_days: pd.DataFrame
    report: FeedReport = field(default_factory=FeedReport, compare=False, repr=False)

    def service_dates(self, service_id: str) -> list[date]:
        """The dates ``service_id`` runs, sorted."""
        return sorted(self._dates_of.get(service_id, ()))

    def date_range(self) -> tuple[date, date] | None:
        """The first and last service date of the feed, or None when it has none."""
        days = self.service_days["service_date"]
        return (min(days), max(days)) if len(days) else None

    def unknown_stops(self) -> pd.DataFrame:
        """Stops the locator could not place in a kommune: stop_id, stop_name, lat, lon."""
        unplaced = self.stops[self.stops["kommune_nr"].isna()]
        return unplaced[["stop_id", "stop_name", "lat", "lon"]].reset_index(drop=True)

    def scheduled_calls(self, service_date: date) -> pd.DataFrame:
        """Every call of the trips running on ``service_date``, with UTC scheduled instants.

        Columns: service_date, trip_id, route_id, mode, stop_id, stop_sequence, kommune_nr,
        scheduled_arrival, scheduled_departure (``datetime64[…, UTC]``, NaT when the feed has
        no time); sorted by trip and sequence.
        """
        days = self.service_days
        services = days.loc[days["service_date"] == service_date, "service_id"]
        trip_ids = self.trips.loc[self.trips["service_id"].isin(services), "trip_id"]
        return self._calls(self.stop_times[self.stop_times["trip_id"].isin(trip_ids)], service_date)

    def trip_calls(self, trip_id: str, service_date: date) -> pd.DataFrame:
        """One trip's calls on ``service_date``, as :meth:`scheduled_calls` gives them.

        Empty when the trip does not run on that date.
        """
        service = self._lookups[1].get(trip_id)
        runs = service is not None and service_date in self._dates_of.get(service, ())
        start, end = self._slices.get(trip_id, (0, 0)) if runs else (0, 0)
        return self._calls(self.stop_times.iloc[start:end], service_date)

    def trip_plan(self, trip_id: str, service_date: date) -> TripPlan | None:
        """:meth:`trip_calls` as a :class:`TripPlan`; None when the trip does not run then."""
        key = (trip_id, service_date)
        plans = self._plans
        if key in plans:
            return plans[key]
        plan = self._plan(trip_id, service_date)
        if len(plans) >= _PLAN_CACHE_MAX:
            plans.clear()
        plans[key] = plan
        return plan

    def _plan(self, trip_id: str, service_date: date) -> TripPlan | None:
        service = self._lookups[1].get(trip_id)
        if service is None or service_date not in self._dates_of.get(service, ()):
            return None
        columns = self._trip_columns.get(trip_id)
        if columns is None:
            return None
        stops, sequences, arrival_seconds, departure_seconds = columns
        midnight = gtfs_midnight(service_date, self.timezone)  # UTC: elapsed-time arithmetic

        def at(seconds: int | None) -> datetime | None:
            return None if seconds is None else midnight + timedelta(seconds=seconds)

        return TripPlan(
            route_id=str(self._lookups[0].get(trip_id)),
            stops=stops,
            sequences=sequences,
            arrivals=tuple(at(v) for v in arrival_seconds),
            departures=tuple(at(v) for v in departure_seconds),
        )

    def stop_modes(self) -> dict[str, tuple[str, ...]]:
        """Stop id → the modes of the routes whose trips call there (built once, on first use)."""
        return self._stop_modes

    @cached_property
    def _stop_modes(self) -> dict[str, tuple[str, ...]]:
        route_of, _, mode_of, _ = self._lookups
        modes = self.stop_times["trip_id"].astype("str").map(route_of).map(mode_of)
        pairs = pd.DataFrame({"stop": self.stop_times["stop_id"].astype("str"), "mode": modes})
        pairs = pairs.dropna().drop_duplicates()
        return {str(k): tuple(sorted(v)) for k, v in pairs.groupby("stop")["mode"]}

    @cached_property
    def _plans(self) -> dict[tuple[str, date], TripPlan | None]:
        return {}

    @cached_property
    def _trip_columns(
        self,
    ) -> dict[
        str,
        tuple[tuple[str, ...], tuple[int, ...], tuple[int | None, ...], tuple[int | None, ...]],
    ]:
        times = self.stop_times
        stops = times["stop_id"].astype("str").tolist()
        sequences = [int(v) for v in times["stop_sequence"].tolist()]
        arrivals = [None if pd.isna(v) else int(v) for v in times["arrival_seconds"].tolist()]
        departures = [None if pd.isna(v) else int(v) for v in times["departure_seconds"].tolist()]
        out = {}
        for trip_id, (start, end) in self._slices.items():
            out[str(trip_id)] = (
                tuple(stops[start:end]),
                tuple(sequences[start:end]),
                tuple(arrivals[start:end]),
                tuple(departures[start:end]),
            )
        return out

    # Lookups a worker hits per trip update: built once, on first use.
    @cached_property
    def _slices(self) -> dict[str, tuple[int, int]]:
        # stop_times are sorted by trip: each trip is one contiguous slice.
        positions = self.stop_times.groupby("trip_id", sort=False, observed=True).indices
        return {t: (int(p[0]), int(p[-1]) + 1) for t, p in positions.items()}

    @cached_property
    def _dates_of(self) -> dict[str, frozenset[date]]:
        days = self.service_days.groupby("service_id")["service_date"]
        return {str(k): frozenset(v) for k, v in days}

    @cached_property
    def _lookups(self) -> tuple[pd.Series, pd.Series, pd.Series, pd.Series]:
        trips = self.trips.set_index("trip_id")
        return (
            trips["route_id"],
            trips["service_id"],
            self.routes.set_index("route_id")["mode"],
            self.stops.set_index("stop_id")["kommune_nr"],
        )

    def _calls(self, times: pd.DataFrame, service_date: date) -> pd.DataFrame:
        midnight = pd.Timestamp(gtfs_midnight(service_date, self.timezone))
        route_of, _, mode_of, kommune_of = self._lookups
        route_id = times["trip_id"].astype("str").map(route_of)
        calls = {
            "service_date": pd.Series(service_date, index=times.index, dtype=object),
            "trip_id": times["trip_id"].astype("str"),
            "route_id": route_id,
            "mode": route_id.map(mode_of).fillna("other"),
            "stop_id": times["stop_id"].astype("str"),
            "stop_sequence": times["stop_sequence"],
            "kommune_nr": times["stop_id"].astype("str").map(kommune_of),
        }
        for kind in ("arrival", "departure"):
            offset = pd.to_timedelta(times[f"{kind}_seconds"], unit="s")
            calls[f"scheduled_{kind}"] = midnight + offset
        return pd.DataFrame(calls).reset_index(drop=True)

    def save(self, directory: Path) -> Path:
        """Write the feed to ``directory``: Parquet when pyarrow is installed, else gzipped CSV."""
        directory.mkdir(parents=True, exist_ok=True)
        fmt = "parquet" if _has_pyarrow() else "csv.gz"
        for name in SCHEMA:
            frame: pd.DataFrame = getattr(self, name)
            path = directory / f"{name}.{fmt}"
            if fmt == "parquet":
                frame.to_parquet(path, index=False)
            else:
                frame.to_csv(path, index=False)
        manifest = {"format_version": FORMAT_VERSION, "format": fmt, "feed": self.feed}
        manifest |= {"timezone": self.timezone.key, "region": self.region}
        (directory / "manifest.json").write_text(json.dumps(manifest, indent=2), "utf-8")
        return directory

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Read a feed written by :meth:`save`; a missing or foreign folder is a ConfigError."""
        try:
            manifest = json.loads((directory / "manifest.json").read_text("utf-8"))
            fmt = manifest["format"]
            tables: dict[str, pd.DataFrame] = {}
            for name, schema in SCHEMA.items():
                path = directory / f"{name}.{fmt}"
                if fmt == "parquet":
                    raw = pd.read_parquet(path)
                else:
                    raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
                tables[name] = _coerce(raw, schema)
            timezone = ZoneInfo(manifest["timezone"])
            return cls(manifest["feed"].lower(), timezone, manifest["region"], **tables)
        except (OSError, ValueError, KeyError, TypeError, ZoneInfoNotFoundError) as exc:
            if not (directory / "manifest.json").exists():
                loaded = ", ".join(_loaded_in(directory.parent)) or "none"
                raise ConfigError(
                    "--feed",
                    f"no static GTFS feed {directory.name!r} in {directory.parent} "
                    f"(loaded: {loaded})",
                    "use a loaded feed, or run `byflyt gtfs load --feed NAME --zip PATH|URL`",
                ) from exc
            raise ConfigError(
                "--feed",
                f"no readable static GTFS feed in {directory}: {exc}",
                "run `byflyt gtfs load --feed NAME --zip PATH|URL` again",
            ) from exc


def feed_name(text: str) -> str:
    """A feed's name as byflyt keeps it: lower case, so ``INN`` and ``inn`` are one feed.

    Entur's codespaces are upper case (``--dataset INN``), folders and records use lower case.
    """
    name = text.strip()
    if not _FEED_NAME.match(name):
        raise ConfigError(
            "--feed", f"{text!r} is not a feed name", "use letters, digits, '.', '_' and '-'"
        )
    return name.lower()


def loaded_feeds(settings: Settings) -> list[str]:
    """The names of the static feeds saved under ``<data_dir>/gtfs``."""
    return _loaded_in(settings.data_dir / "gtfs")


def _loaded_in(gtfs_dir: Path) -> list[str]:
    if not gtfs_dir.is_dir():
        return []
    return sorted(p.name for p in gtfs_dir.iterdir() if (p / "manifest.json").is_file())


def feed_dir(settings: Settings, feed: str) -> Path:
    """Where the static feed named ``feed`` is saved: ``<data_dir>/gtfs/<feed in lower case>``.

    A folder saved in another case by an earlier byflyt is found too.
    """
    name = feed_name(feed)
    gtfs_dir = settings.data_dir / "gtfs"
    target = gtfs_dir / name
    if not target.exists():
        same = [n for n in _loaded_in(gtfs_dir) if n.lower() == name]
        if same:
            return gtfs_dir / same[0]
    return target


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
    ``ET-Client-Name``). Rows that break a rule of :mod:`byflyt.connectors.gtfs_checks` are
    dropped and counted in the feed's ``report``; a zip past ``max_uncompressed`` bytes or
    ``max_ratio``, a malformed feed or one with no trip left is a ConfigError
    (:class:`~byflyt.connectors.gtfs_checks.FeedUnusable`).
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
        stops=_coerce(stops[stops["stop_id"].isin(used)], SCHEMA["stops"]),
        routes=_coerce(routes, SCHEMA["routes"]),
        trips=_coerce(trips, SCHEMA["trips"]),
        stop_times=_coerce(stop_times, SCHEMA["stop_times"]),
        service_days=_coerce(service_days, SCHEMA["service_days"]),
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


def _coerce(frame: pd.DataFrame, schema: Mapping[str, str]) -> pd.DataFrame:
    """``frame`` with exactly ``schema``'s columns and types (also after a CSV round-trip)."""
    out: dict[str, pd.Series] = {}
    for column, kind in schema.items():
        values = frame[column] if column in frame.columns else pd.Series(pd.NA, index=frame.index)
        if kind == "str":
            out[column] = values.astype("str").where(values.notna())
        elif kind == "cat":
            out[column] = values.astype("category")
        elif kind in ("int", "Int32"):
            out[column] = pd.to_numeric(values).astype(np.int64 if kind == "int" else "Int32")
        elif kind == "float":
            out[column] = pd.to_numeric(values).astype(float)
        else:
            out[column] = pd.to_datetime(values).dt.date
    return pd.DataFrame(out).reset_index(drop=True)


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True
