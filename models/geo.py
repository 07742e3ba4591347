"""Place points (transit stops) in kommuner: point-in-polygon over kommune boundaries.

Boundaries are a GeoJSON FeatureCollection in WGS84 with a ``kommunenummer`` property per
feature (Kartverket's administrative units, CC BY 4.0, "© Kartverket"). byflyt ships Norway's
357 kommuner in the 2024 numbering as package data (``data/kommuner-2024-S.geojson.gz``, coarse
quality, built from Kartverket's units by the public repository robhop/fylker-og-kommuner); it is
the default whenever ``BYFLYT_KOMMUNER_GEOJSON`` is unset. A file is read once per process and
indexed with a shapely :class:`~shapely.STRtree`.

Kommune polygons cover lakes (Mjøsa is split between its kommuner) but stop at the sea and the
national border, so a ferry quay on the coast or a stop right at the Swedish border can fall
just outside every polygon, more so with coarse boundaries. Such a point snaps to the nearest
kommune when it lies within :data:`SNAP_METRES`; farther away it stays unplaced (``None``).

Distances are computed in a local tangent plane at the point: longitude and latitude offsets
are scaled by the WGS84 ellipsoid's prime-vertical and meridional radii of curvature at the
point's latitude (an equirectangular projection centred on the point). Within a few kilometres
this is accurate to better than 0.1 %, far below what a 500 m threshold needs.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Self

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from shapely.geometry import shape

from byflyt.errors import ConfigError
from byflyt.models.kommuner import normalise_kommune_nr
from byflyt.settings import Settings

SNAP_METRES = 500.0
"""How far outside every polygon a point may be and still snap to the nearest kommune."""

_WGS84_A = 6_378_137.0
_WGS84_E2 = 6.69437999014e-3
_GEOJSON_SETTING = "BYFLYT_KOMMUNER_GEOJSON"
BUNDLED_BOUNDARIES = "data/kommuner-2024-S.geojson.gz"
"""The shipped boundaries, inside the ``byflyt.models`` package."""
BOUNDARIES_ATTRIBUTION = "Kommune boundaries © Kartverket, CC BY 4.0 (2024 numbering)"


@dataclass(frozen=True)
class KommuneBoundaries:
    """Kommune polygons and their STRtree; one instance per file (see :func:`load_boundaries`)."""

    kommune_nrs: NDArray[np.str_]
    geometries: NDArray[np.object_]
    tree: shapely.STRtree


def _metres_per_degree(lat: float) -> tuple[float, float]:
    """Metres per degree of longitude and of latitude at ``lat`` on the WGS84 ellipsoid."""
    phi = math.radians(lat)
    w = math.sqrt(1.0 - _WGS84_E2 * math.sin(phi) ** 2)
    prime_vertical = _WGS84_A / w
    meridional = _WGS84_A * (1.0 - _WGS84_E2) / w**3
    return math.radians(1.0) * prime_vertical * math.cos(phi), math.radians(1.0) * meridional


def _read_geojson(path: Path | None) -> object:
    """The parsed GeoJSON of ``path`` (gzip when it ends in ``.gz``), or of the shipped file."""
    if path is None:
        raw = resources.files("byflyt.models").joinpath(BUNDLED_BOUNDARIES).read_bytes()
        return json.loads(gzip.decompress(raw))
    if path.suffix == ".gz":
        return json.loads(gzip.decompress(path.read_bytes()))
    return json.loads(path.read_text("utf-8"))


def load_boundaries(path: Path | None = None) -> KommuneBoundaries:
    """Read and index a kommune GeoJSON file (``None``: the shipped boundaries); cached per file.

    Raises :class:`ConfigError` naming ``BYFLYT_KOMMUNER_GEOJSON`` when the file is missing,
    unreadable or not a FeatureCollection with ``kommunenummer`` properties.
    """
    return _load_boundaries(path)


@cache
def _load_boundaries(path: Path | None) -> KommuneBoundaries:
    origin = "the shipped kommune boundaries" if path is None else str(path)
    try:
        data: dict[str, list[dict[str, dict[str, object]]]] = _read_geojson(path)  # type: ignore[assignment]
        features = data["features"]
        numbers = [normalise_kommune_nr(f["properties"]["kommunenummer"]) for f in features]
        shapes = [shape(f["geometry"]) for f in features]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(
            _GEOJSON_SETTING,
            f"cannot read kommune boundaries from {origin}: {exc}",
            "point it at a GeoJSON FeatureCollection with a kommunenummer property per feature, "
            "or unset it to use the shipped boundaries",
        ) from exc
    if not shapes:
        raise ConfigError(_GEOJSON_SETTING, f"{origin} has no features", "use a non-empty file")
    # Simplified boundaries self-intersect in places; repair them so predicates are reliable.
    geometries = shapely.make_valid(np.asarray(shapes, dtype=object), method="structure")
    return KommuneBoundaries(
        kommune_nrs=np.asarray(numbers, dtype=str),
        geometries=geometries,
        tree=shapely.STRtree(geometries),
    )


def read_overrides(path: Path) -> dict[str, str]:
    """Read a ``stop_id,kommune_nr`` CSV (that exact header) into a mapping.

    Raises :class:`ConfigError` when the file is missing, has another header, or a bad number.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or [h.strip() for h in header] != ["stop_id", "kommune_nr"]:
                raise ValueError(f"header is {header!r}, expected stop_id,kommune_nr")
            overrides: dict[str, str] = {}
            for line, row in enumerate(reader, start=2):
                if not row or not "".join(row).strip():
                    continue
                if len(row) != 2:
                    raise ValueError(f"line {line} has {len(row)} fields, expected 2")
                # Spreadsheets drop the leading zero: 301 means 0301.
                number = row[1].strip()
                overrides[row[0].strip()] = normalise_kommune_nr(
                    int(number) if number.isdigit() and len(number) == 3 else number
                )
    except (OSError, ValueError) as exc:
        raise ConfigError(
            "--overrides",
            f"cannot read stop kommune overrides from {path}: {exc}",
            "give a CSV with header stop_id,kommune_nr and 4-digit kommune numbers",
        ) from exc
    return overrides


@dataclass(frozen=True)
class KommuneLocator:
    """Finds the kommune of a point; per-stop overrides win over geometry."""

    boundaries: KommuneBoundaries
    overrides: Mapping[str, str] = field(default_factory=dict)
    snap_metres: float = SNAP_METRES

    @classmethod
    def from_file(
        cls, geojson: Path | None = None, *, overrides: Path | Mapping[str, str] | None = None
    ) -> Self:
        """A locator over ``geojson`` (``None``: the shipped boundaries), with overrides."""
        if isinstance(overrides, Path):
            mapping: Mapping[str, str] = read_overrides(overrides)
        else:
            mapping = {k: normalise_kommune_nr(v) for k, v in (overrides or {}).items()}
        return cls(load_boundaries(None if geojson is None else geojson.resolve()), mapping)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, overrides: Path | Mapping[str, str] | None = None
    ) -> Self:
        """A locator over ``settings.kommuner_geojson``, else the shipped boundaries.

        An unreadable file is a :class:`ConfigError` naming the setting.
        """
        return cls.from_file(settings.kommuner_geojson, overrides=overrides)

    def locate(self, lat: float, lon: float, stop_id: str | None = None) -> str | None:
        """The kommune number of one point (or the override for ``stop_id``), else None."""
        return self.locate_many([lat], [lon], None if stop_id is None else [stop_id])[0]

    def locate_many(
        self,
        lats: ArrayLike,
        lons: ArrayLike,
        stop_ids: Sequence[str | None] | None = None,
    ) -> list[str | None]:
        """Kommune numbers of many points at once; NaN or out-of-range coordinates give None.

        Containment is one vectorised STRtree query; only the few points outside every polygon
        are then measured against their neighbours for the snap.
        """
        lat = np.asarray(lats, dtype=float)
        lon = np.asarray(lons, dtype=float)
        if lat.shape != lon.shape or lat.ndim != 1:
            raise ValueError("lats and lons must be 1-d sequences of the same length")
        if stop_ids is not None and len(stop_ids) != len(lat):
            raise ValueError("stop_ids must be as long as lats and lons")
        result: list[str | None] = [None] * len(lat)
        valid = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
        index = np.flatnonzero(valid)
        points = shapely.points(lon[index], lat[index])
        point_hit, geom_hit = self.boundaries.tree.query(points, predicate="intersects")
        # A point on a shared boundary hits two kommuner: take the first in file order.
        order = np.lexsort((geom_hit, point_hit))
        point_hit, geom_hit = point_hit[order], geom_hit[order]
        first = np.unique(point_hit, return_index=True)[1]
        placed = np.zeros(len(index), dtype=bool)
        for p, g in zip(point_hit[first], geom_hit[first], strict=True):
            result[index[p]] = str(self.boundaries.kommune_nrs[g])
            placed[p] = True
        for p in np.flatnonzero(~placed):
            i = index[p]
            result[i] = self._snap(float(lat[i]), float(lon[i]))
        if stop_ids is not None and self.overrides:
            for i, stop_id in enumerate(stop_ids):
                if stop_id is not None and stop_id in self.overrides:
                    result[i] = self.overrides[stop_id]
        return result

    def distance_metres(self, lat: float, lon: float, kommune_nr: str) -> float:
        """Distance in metres from a point to a kommune (0 inside); for checks and tests."""
        matches = np.flatnonzero(self.boundaries.kommune_nrs == kommune_nr)
        if len(matches) == 0:
            raise KeyError(kommune_nr)
        return min(self._local_distance(lat, lon, int(g), math.inf) for g in matches)

    def _snap(self, lat: float, lon: float) -> str | None:
        x_scale, y_scale = _metres_per_degree(lat)
        dlon, dlat = self.snap_metres / x_scale, self.snap_metres / y_scale
        window = shapely.box(lon - dlon, lat - dlat, lon + dlon, lat + dlat)
        best: tuple[float, int] | None = None
        for g in sorted(self.boundaries.tree.query(window)):
            metres = self._local_distance(lat, lon, int(g), 2 * self.snap_metres)
            if metres <= self.snap_metres and (best is None or metres < best[0]):
                best = (metres, int(g))
        return None if best is None else str(self.boundaries.kommune_nrs[best[1]])

    def _local_distance(self, lat: float, lon: float, geom: int, window_metres: float) -> float:
        """Metres from the point to one geometry, in the tangent plane at the point.

        With a finite ``window_metres`` the geometry is first clipped to a box of that half-size
        around the point (cheap on big polygons); an empty clip means "farther than the window".
        """
        x_scale, y_scale = _metres_per_degree(lat)
        geometry = self.boundaries.geometries[geom]
        if math.isfinite(window_metres):
            dlon, dlat = window_metres / x_scale, window_metres / y_scale
            geometry = shapely.clip_by_rect(
                geometry, lon - dlon, lat - dlat, lon + dlon, lat + dlat
            )
            if geometry.is_empty:
                return math.inf

        def to_metres(coords: NDArray[np.float64]) -> NDArray[np.float64]:
            return (coords - (lon, lat)) * (x_scale, y_scale)

        local = shapely.transform(geometry, to_metres)
        return float(shapely.distance(local, shapely.Point(0.0, 0.0)))


class LazyLocator:
    """The kommune of a point, from the settings' boundaries read on first use, not at start."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._locator: KommuneLocator | None = None

    def __call__(self, lat: float, lon: float) -> str | None:
        """The kommune number of the point at ``lat``/``lon``, else None."""
        if self._locator is None:
            self._locator = KommuneLocator.from_settings(self.settings)
        return self._locator.locate(lat, lon)
