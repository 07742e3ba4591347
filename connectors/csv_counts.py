"""Counts from a CSV file (manual counts, a kommune's own export) into the same hourly model.

One row per point and interval, by default with the columns
``point_id;name;lat;lon;kommune_nr;start;end;mode;count`` (``;``, ``,`` or tab; a BOM and
Windows-1252 are read too, as Norwegian spreadsheets export them). A point is placed by its
``kommune_nr`` or else by ``lat``/``lon``. Times are ISO 8601 or ``dd.mm.yyyy HH:MM``; without
an offset they are Europe/Oslo local time. Numbers may have a decimal comma.

Intervals shorter than an hour are summed into their hour with coverage = the share of the hour
covered; an hour is the longest interval (a daily manual count is not an hourly one), and an
interval may not cross an hour's end. Every bad row goes to the dead-letter topic with its line
number and the reason; the rest is imported. A mapping file (TOML) renames columns for other
exports: ``[columns]`` maps byflyt's names to the file's, ``[modes]`` the file's mode words to
``bicycle`` or ``pedestrian``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from byflyt.clock import OSLO
from byflyt.connectors.base import Call, Connector, Discovery, PollResult, Record
from byflyt.connectors.counters import HOUR, count_record, fetched, hour_runs, is_duplicate
from byflyt.errors import ConfigError
from byflyt.models.base import Mode, hour_floor
from byflyt.models.counts import CountObservation, CountPoint
from byflyt.models.envelope import Rejected
from byflyt.models.geo import LazyLocator
from byflyt.models.kommuner import kommune_names, normalise_kommune_nr
from byflyt.settings import Settings
from byflyt.topics import BIKE_POINTS

log = logging.getLogger(__name__)

COLUMNS = ("point_id", "name", "lat", "lon", "kommune_nr", "start", "end", "mode", "count")
REQUIRED = ("point_id", "start", "end", "mode", "count")
MODE_WORDS: dict[str, Mode] = {
    "bicycle": "bicycle",
    "bike": "bicycle",
    "sykkel": "bicycle",
    "syklende": "bicycle",
    "pedestrian": "pedestrian",
    "foot": "pedestrian",
    "walking": "pedestrian",
    "gående": "pedestrian",
    "gange": "pedestrian",
    "fotgjenger": "pedestrian",
}
_NORWEGIAN = re.compile(
    r"^(\d{1,2})\.(\d{1,2})\.(\d{4})(?:[ T](\d{1,2})[:.](\d{2})(?::(\d{2}))?)?$"
)


@dataclass(frozen=True)
class Mapping:
    """Column names of the file per byflyt column, and extra mode words."""

    columns: dict[str, str]
    modes: dict[str, Mode]

    @classmethod
    def read(cls, path: Path | None) -> Mapping:
        """The mapping in ``path`` (None: the default columns); ConfigError when unusable."""
        if path is None:
            return cls({c: c for c in COLUMNS}, {})
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(
                "--mapping", f"cannot read {path}: {exc}", "give a TOML file"
            ) from exc
        renamed = data.get("columns") or {}
        unknown = sorted(set(renamed) - set(COLUMNS))
        if unknown or not all(isinstance(v, str) for v in renamed.values()):
            raise ConfigError(
                "--mapping",
                f"[columns] has unknown names {unknown}"
                if unknown
                else "[columns] values must be text",
                f"map some of {', '.join(COLUMNS)} to your column names",
            )
        modes = {}
        for word, mode in (data.get("modes") or {}).items():
            if mode not in ("bicycle", "pedestrian"):
                raise ConfigError(
                    "--mapping", f"[modes] {word} = {mode!r}", "use bicycle or pedestrian"
                )
            modes[str(word).strip().lower()] = mode
        return cls({c: renamed.get(c, c) for c in COLUMNS}, modes)


def decode(raw: bytes) -> str:
    """The file's text: UTF-8 (with or without a BOM), else Windows-1252."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252")


def number(text: str) -> float:
    """A number with a decimal point or comma (``60,7945``); spaces as thousands separators."""
    cleaned = text.strip().replace("\u00a0", "").replace(" ", "").replace(",", ".")
    return float(cleaned)


def when(text: str) -> datetime:
    """ISO 8601 or ``dd.mm.yyyy[ HH:MM[:SS]]``; without an offset: Europe/Oslo local time."""
    value = text.strip()
    match = _NORWEGIAN.match(value)
    if match:
        day, month, year, hour, minute, second = match.groups()
        parsed = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=OSLO,
        )
    else:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{text!r} is not a time (dd.mm.yyyy HH:MM or ISO 8601)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=OSLO)
    return parsed.astimezone(UTC)


@dataclass
class _Hour:
    volume: int = 0
    minutes: float = 0.0


class CsvCountsConnector(Connector[Path]):
    """One CSV file of counts, read as one item; checkpointed by the file's digest."""

    name = "csv"

    def __init__(
        self, settings: Settings, path: Path, *, source: str, mapping: Path | None = None
    ) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.\-]{0,63}", source):
            raise ConfigError("--source", f"{source!r}", "give a short name: a-z, 0-9, . _ -")
        if not path.is_file():
            raise ConfigError("FILE", f"{path} is not a readable file", "give the CSV file's path")
        self.source = source
        self.path = path
        self.settings = settings
        self.mapping = Mapping.read(mapping)
        self._locate = LazyLocator(settings)

    def discover(self, call: Call) -> Discovery[Path]:
        """The file."""
        return Discovery(items=[self.path])

    def item_id(self, item: Path) -> str:
        """The file's name."""
        return item.name

    def poll(self, item: Path, position: str | None, call: Call) -> PollResult:
        """Every good row summed into hours; every bad row rejected with its line number."""
        raw = item.read_bytes()
        text = decode(raw)
        first = text.split("\n", 1)[0]
        delimiter = max(";,\t", key=first.count)
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
        header = [h.strip() for h in reader.fieldnames or []]
        reader.fieldnames = header
        names = self.mapping.columns
        missing = [c for c in REQUIRED if names[c] not in header]
        placed = names["kommune_nr"] in header or (
            names["lat"] in header and names["lon"] in header
        )
        if missing or not placed:
            lacking = missing + ([] if placed else ["kommune_nr or lat and lon"])
            reason = f"the header {header} has no {', '.join(lacking)} (see --mapping)"
            return PollResult(records=[], rejected=[self._reject(reason, first, 1)])
        rejected: list[Rejected] = []
        points: dict[str, CountPoint] = {}
        hours: dict[tuple[str, datetime], _Hour] = defaultdict(_Hour)
        spans: dict[tuple[str, datetime], list[tuple[datetime, datetime, int]]] = defaultdict(list)
        rows = 0
        for row in reader:
            rows += 1
            line = reader.line_num
            try:
                point, start, end, count = self._row(row, points)
                key = (point.point_id, hour_floor(start))
                for other_start, other_end, other_line in spans[key]:
                    if start < other_end and other_start < end:
                        raise ValueError(f"the interval overlaps line {other_line}'s")
            except ValueError as exc:
                rejected.append(self._reject(str(exc), _raw(row, delimiter), line))
                continue
            points.setdefault(point.point_id, point)
            spans[key].append((start, end, line))
            hours[key].volume += count
            hours[key].minutes += (end - start) / timedelta(minutes=1)
        now = datetime.now(UTC)
        observations = [
            CountObservation(
                source=self.source,
                point_id=pid,
                kommune_nr=points[pid].kommune_nr,
                mode=points[pid].mode,
                start=hour,
                end=hour + HOUR,
                volume=cell.volume,
                coverage=round(min(100.0, cell.minutes / 60 * 100), 2),
                retrieved_at=now,
            )
            for (pid, hour), cell in sorted(hours.items())
            if not is_duplicate(self.settings, self.source, pid)
        ]
        # A manual count was "asked for" exactly over the hours it covers.
        counted: dict[str, list[datetime]] = defaultdict(list)
        for o in observations:
            counted[o.point_id].append(o.start)
        kept = [
            p for p in points.values() if not is_duplicate(self.settings, self.source, p.point_id)
        ]
        return PollResult(
            records=[Record.of(BIKE_POINTS, p) for p in kept]
            + [count_record(o) for o in observations]
            + [
                fetched(self.source, pid, points[pid].kommune_nr, points[pid].mode, *run, now)
                for pid, hours in sorted(counted.items())
                for run in hour_runs(hours)
            ],
            rejected=rejected,
            checkpoint="sha256:" + hashlib.sha256(raw).hexdigest(),
            last_data=max((o.start for o in observations), default=None),
            counts=Counter(rows=rows, observations=len(observations), points=len(kept)),
        )

    def _reject(self, reason: str, raw: str, line: int) -> Rejected:
        return self.reject(
            "invalid_row", f"line {line}: {reason}", raw, file=self.path.name, line=str(line)
        )

    def _cell(self, row: dict[str, Any], column: str) -> str:
        value = row.get(self.mapping.columns[column])
        return value.strip() if isinstance(value, str) else ""

    def _row(
        self, row: dict[str, Any], points: dict[str, CountPoint]
    ) -> tuple[CountPoint, datetime, datetime, int]:
        if None in row:
            raise ValueError("the row has more fields than the header")
        pid = self._cell(row, "point_id")
        if not pid:
            raise ValueError("point_id is empty")
        word = self._cell(row, "mode").lower()
        mode = self.mapping.modes.get(word) or MODE_WORDS.get(word)
        if mode is None:
            raise ValueError(f"mode {word!r} is not bicycle or pedestrian")
        start, end = when(self._cell(row, "start")), when(self._cell(row, "end"))
        if end <= start:
            raise ValueError(f"end {self._cell(row, 'end')!r} is not after start")
        if end - start > HOUR:
            raise ValueError(
                f"the interval {self._cell(row, 'start')}–{self._cell(row, 'end')} is longer "
                "than an hour: a daily or longer count is not an hourly one"
            )
        if end > hour_floor(start) + HOUR:
            raise ValueError("the interval crosses the end of an hour: split it at the hour")
        text = self._cell(row, "count")
        try:
            value = number(text)
        except ValueError:
            raise ValueError(f"count {text!r} is not a number") from None
        if value < 0 or value != int(value) or value > 1_000_000:
            raise ValueError(f"count {text!r} is not a whole number of passages")
        point = self._point(row, pid, mode)
        known = points.get(pid)
        if known is not None and known.mode != mode:
            raise ValueError(
                f"point {pid} counts {known.mode} in earlier rows: one point, one mode"
            )
        return point, start, end, int(value)

    def _point(self, row: dict[str, Any], pid: str, mode: Mode) -> CountPoint:
        lat = lon = None
        if self._cell(row, "lat") and self._cell(row, "lon"):
            try:
                lat, lon = number(self._cell(row, "lat")), number(self._cell(row, "lon"))
            except ValueError:
                raise ValueError("lat/lon are not numbers") from None
        kommune_text = self._cell(row, "kommune_nr")
        if kommune_text:
            # Spreadsheets drop leading zeros: 301 is Oslo's 0301.
            kommune = normalise_kommune_nr(
                int(kommune_text) if kommune_text.isdigit() else kommune_text
            )
            if kommune not in kommune_names():
                raise ValueError(f"kommune_nr {kommune_text!r} is no Norwegian kommune (2024)")
        elif lat is not None and lon is not None:
            found = self._locate(lat, lon)
            if found is None:
                raise ValueError(f"{lat}, {lon} is in no Norwegian kommune")
            kommune = found
        else:
            raise ValueError("neither kommune_nr nor lat and lon is given")
        return CountPoint(
            source=self.source,
            point_id=pid,
            name=self._cell(row, "name"),
            kommune_nr=kommune,
            mode=mode,
            lat=lat,
            lon=lon,
        )


def _raw(row: dict[str, Any], delimiter: str) -> str:
    return delimiter.join(str(v) for v in row.values() if v is not None)
