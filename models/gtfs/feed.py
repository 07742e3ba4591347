"""A region's slice of a static GTFS feed as byflyt keeps it.

Stops placed in kommuner, trips, schedules and service days, saved under
``<data_dir>/gtfs/<feed>`` and read back.

Times are kept as seconds after the service day's GTFS "midnight", which the GTFS reference
defines as noon minus 12 h in the agency timezone (see
:func:`byflyt.models.transit.gtfs_midnight`). :mod:`byflyt.models.gtfs.load` builds one from a zip.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from byflyt.errors import ConfigError
from byflyt.models.base import Mode
from byflyt.models.gtfs.checks import FeedReport
from byflyt.models.transit import gtfs_midnight
from byflyt.settings import Settings

DEFAULT_TIMEZONE = "Europe/Oslo"
FORMAT_VERSION = 1
_FEED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")


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


@dataclass(frozen=True)
class TripSchedule:
    """One trip's static calls on one service date, times in POSIX seconds (None: no time).

    :class:`TripPlan` without datetime objects (see :meth:`StaticFeed.trip_schedule`).
    """

    route_id: str
    stops: tuple[str, ...]
    sequences: tuple[int, ...]
    arrivals: tuple[int | None, ...]
    departures: tuple[int | None, ...]


_NO_TIME = -(2**31)  # a stop time the feed does not give, in the int32 columns


@dataclass(frozen=True)
class _Columns:
    """``stop_times`` as flat arrays, one row per call, sorted by trip and sequence."""

    stop_names: list[str]
    stop_codes: np.ndarray
    sequences: np.ndarray
    arrivals: np.ndarray
    departures: np.ndarray


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

    def trip_schedule(self, trip_id: str, service_date: date) -> TripSchedule | None:
        """:meth:`trip_plan` in epoch seconds, built afresh (no datetime, nothing cached here).

        For the connectors that resolve every trip of every snapshot and keep what they need of
        a plan themselves: a national day's plans as datetimes would cost tens of megabytes.
        """
        columns = self._columns_of(trip_id, service_date)
        if columns is None:
            return None
        stops, sequences, arrival_seconds, departure_seconds = columns
        midnight = self._midnight(service_date)
        return TripSchedule(
            route_id=str(self._lookups[0].get(trip_id)),
            stops=stops,
            sequences=sequences,
            arrivals=tuple(None if v is None else midnight + v for v in arrival_seconds),
            departures=tuple(None if v is None else midnight + v for v in departure_seconds),
        )

    def _plan(self, trip_id: str, service_date: date) -> TripPlan | None:
        columns = self._columns_of(trip_id, service_date)
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

    def _columns_of(
        self, trip_id: str, service_date: date
    ) -> tuple[tuple[str, ...], tuple[int, ...], list[int | None], list[int | None]] | None:
        """A running trip's stops, sequences and seconds after GTFS midnight (None: no time)."""
        service = self._lookups[1].get(trip_id)
        if service is None or service_date not in self._dates_of.get(service, ()):
            return None
        span = self._slices.get(trip_id)
        if span is None:
            return None
        start, end = span
        columns = self._trip_columns
        names = columns.stop_names
        arrivals = columns.arrivals[start:end].tolist()
        departures = columns.departures[start:end].tolist()
        return (
            tuple([names[code] for code in columns.stop_codes[start:end].tolist()]),
            tuple(columns.sequences[start:end].tolist()),
            [None if v == _NO_TIME else v for v in arrivals],
            [None if v == _NO_TIME else v for v in departures],
        )

    def _midnight(self, service_date: date) -> int:
        """GTFS midnight of ``service_date`` in epoch seconds (see :func:`gtfs_midnight`)."""
        midnights = self._midnights
        seconds = midnights.get(service_date)
        if seconds is None:
            seconds = midnights[service_date] = int(
                gtfs_midnight(service_date, self.timezone).timestamp()
            )
        return seconds

    @cached_property
    def _midnights(self) -> dict[date, int]:
        return {}

    def stop_modes(self) -> dict[str, tuple[Mode, ...]]:
        """Stop id → the modes of the routes whose trips call there (built once, on first use)."""
        return self._stop_modes

    @cached_property
    def _stop_modes(self) -> dict[str, tuple[Mode, ...]]:
        route_of, _, mode_of, _ = self._lookups
        modes = self.stop_times["trip_id"].astype("str").map(route_of).map(mode_of)
        pairs = pd.DataFrame({"stop": self.stop_times["stop_id"].astype("str"), "mode": modes})
        pairs = pairs.dropna().drop_duplicates()
        return {str(k): tuple(sorted(v)) for k, v in pairs.groupby("stop")["mode"]}

    @cached_property
    def _plans(self) -> dict[tuple[str, date], TripPlan | None]:
        return {}

    @cached_property
    def _trip_columns(self) -> _Columns:
        # Why arrays, not a tuple per trip: a Python int per time and a str per stop id cost
        # about 100 bytes a call, tens of megabytes for a national feed.
        times = self.stop_times
        stop_ids = times["stop_id"].astype("category")
        names = [str(v) for v in stop_ids.cat.categories]
        names.append("nan")  # code -1: no stop_id, as ``astype(str)`` reads it
        return _Columns(
            stop_names=names,
            stop_codes=stop_ids.cat.codes.to_numpy(),
            sequences=times["stop_sequence"].to_numpy(dtype=np.int64),
            arrivals=times["arrival_seconds"].to_numpy(dtype=np.int32, na_value=_NO_TIME),
            departures=times["departure_seconds"].to_numpy(dtype=np.int32, na_value=_NO_TIME),
        )

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
                tables[name] = to_schema(raw, schema)
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


def to_schema(frame: pd.DataFrame, schema: Mapping[str, str]) -> pd.DataFrame:
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
