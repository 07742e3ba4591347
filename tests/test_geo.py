"""KommuneLocator: point-in-polygon, the 500 m snap, vectorised lookups, overrides, settings."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import shapely

from byflyt.errors import ConfigError
from byflyt.models.geo import SNAP_METRES, KommuneLocator, load_boundaries, read_overrides
from byflyt.samples.gtfs import STOP_INFO
from byflyt.settings import Settings

MOROKULIEN = STOP_INFO["morokulien_bus"]


def _haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(a))


@pytest.mark.parametrize(
    ("lat", "lon", "kommune"),
    [
        (60.7920, 11.0760, "3403"),  # Hamar stasjon
        (60.7975, 10.6920, "3407"),  # Gjøvik skysstasjon
        (61.1146, 10.4606, "3405"),  # Lillehammer stasjon
        (60.7164, 11.1899, "3413"),  # Stange stasjon
        (60.3950, 10.5620, "3446"),  # Jaren, Gran
        (60.1905, 11.9990, "3401"),  # Kongsvinger
        (60.85, 10.85, "3411"),  # the middle of Mjøsa: lakes belong to kommuner
        (59.9111, 10.7528, "0301"),  # Oslo S
        (69.6492, 18.9553, "5501"),  # Tromsø
    ],
)
def test_point_in_polygon(locator: KommuneLocator, lat: float, lon: float, kommune: str) -> None:
    assert locator.locate(lat, lon) == kommune


def test_a_point_just_outside_every_polygon_snaps_to_the_nearest_kommune(
    locator: KommuneLocator,
) -> None:
    assert MOROKULIEN.lat is not None
    assert MOROKULIEN.lon is not None
    lat, lon = MOROKULIEN.lat, MOROKULIEN.lon
    point = shapely.Point(lon, lat)
    assert len(locator.boundaries.tree.query(point, predicate="intersects")) == 0
    metres = locator.distance_metres(lat, lon, "3416")
    assert 200 < metres < SNAP_METRES
    # The tangent-plane distance agrees with great-circle distances to a densified border.
    eidskog = locator.boundaries.geometries[locator.boundaries.kommune_nrs == "3416"][0]
    near = shapely.clip_by_rect(eidskog.boundary, lon - 0.02, lat - 0.01, lon + 0.02, lat + 0.01)
    coords = shapely.get_coordinates(shapely.segmentize(near, 0.00002))
    closest = min(_haversine(lat, lon, y, x) for x, y in coords)
    assert metres == pytest.approx(closest, rel=0.01)
    assert locator.locate(lat, lon) == "3416"
    # 1 km further into Sweden it is nobody's.
    assert locator.locate(lat, lon + 0.018) is None


@pytest.mark.parametrize(
    ("lat", "lon"),
    [
        (10.6431, 60.7741),  # latitude and longitude swapped: the Arabian Sea
        (58.5, 3.0),  # the North Sea
        (59.88, 10.70),  # the Oslofjord, 1 km from land: kommuner stop at the shore
        (math.nan, 10.0),
        (95.0, 10.0),
        (60.0, 190.0),
    ],
)
def test_unplaceable_points(locator: KommuneLocator, lat: float, lon: float) -> None:
    assert locator.locate(lat, lon) is None


def test_locate_many_matches_locate_in_order(locator: KommuneLocator) -> None:
    rng = np.random.default_rng(3)
    lats = np.concatenate([rng.uniform(58.0, 71.0, 2000), [np.nan, MOROKULIEN.lat or 0.0]])
    lons = np.concatenate([rng.uniform(4.0, 31.0, 2000), [10.0, MOROKULIEN.lon or 0.0]])
    many = locator.locate_many(lats, lons)
    assert len(many) == len(lats)
    assert many[-2:] == [None, "3416"]
    sample = rng.choice(len(lats), 60, replace=False)
    assert [many[i] for i in sample] == [locator.locate(lats[i], lons[i]) for i in sample]
    assert sum(k is not None for k in many) > 200
    assert locator.locate_many([], []) == []


def test_overrides_win_over_geometry(tmp_path: Path) -> None:
    csv_path = tmp_path / "overrides.csv"
    csv_path.write_text("stop_id,kommune_nr\nNSR:Quay:1,3407\nNSR:Quay:2,301\n", "utf-8")
    assert read_overrides(csv_path) == {"NSR:Quay:1": "3407", "NSR:Quay:2": "0301"}
    locator = KommuneLocator.from_file(overrides=csv_path)
    assert locator.locate(60.7920, 11.0760, "NSR:Quay:1") == "3407"
    assert locator.locate(58.5, 3.0, "NSR:Quay:2") == "0301"
    assert locator.locate(60.7920, 11.0760, "NSR:Quay:3") == "3403"
    assert locator.locate_many([60.79, 58.5], [11.07, 3.0], ["NSR:Quay:1", None]) == ["3407", None]
    mapping = KommuneLocator.from_file(overrides={"NSR:Quay:9": 3403})
    assert mapping.locate(58.5, 3.0, "NSR:Quay:9") == "3403"


@pytest.mark.parametrize(
    "text",
    [
        "stop,kommune\nNSR:Quay:1,3407\n",
        "stop_id,kommune_nr\nNSR:Quay:1,Hamar\n",
        "stop_id,kommune_nr\nNSR:Quay:1,3407,extra\n",
        "",
    ],
)
def test_bad_override_files_are_config_errors(tmp_path: Path, text: str) -> None:
    csv_path = tmp_path / "overrides.csv"
    csv_path.write_text(text, "utf-8")
    with pytest.raises(ConfigError, match="stop_id,kommune_nr"):
        read_overrides(csv_path)
    with pytest.raises(ConfigError):
        read_overrides(tmp_path / "missing.csv")


def test_from_settings_and_its_errors(tmp_path: Path, geojson_file: Path) -> None:
    # Unset: the shipped boundaries, read once per process.
    shipped = KommuneLocator.from_settings(Settings(data_dir=tmp_path, kommuner_geojson=None))
    assert shipped.locate(60.7920, 11.0760) == "3403"
    assert len(shipped.boundaries.kommune_nrs) == 357
    assert load_boundaries() is shipped.boundaries

    # The setting still overrides the shipped file: a plain and a gzipped GeoJSON both work.
    settings = Settings(data_dir=tmp_path, kommuner_geojson=geojson_file)
    locator = KommuneLocator.from_settings(settings)
    assert locator.boundaries is not shipped.boundaries
    assert locator.locate(60.7920, 11.0760) == "3403"
    assert KommuneLocator.from_settings(settings).boundaries is locator.boundaries
    assert load_boundaries(geojson_file.resolve()) is locator.boundaries
    one = tmp_path / "hamar.geojson.gz"
    hamar = [
        f
        for f in json.loads(geojson_file.read_text("utf-8"))["features"]
        if f["properties"]["kommunenummer"] == "3403"
    ]
    one.write_bytes(
        gzip.compress(json.dumps({"type": "FeatureCollection", "features": hamar}).encode())
    )
    only_hamar = KommuneLocator.from_settings(Settings(data_dir=tmp_path, kommuner_geojson=one))
    assert list(only_hamar.boundaries.kommune_nrs) == ["3403"]
    assert only_hamar.locate(59.9139, 10.7522) is None  # Oslo is not in this file

    with pytest.raises(ConfigError, match="BYFLYT_KOMMUNER_GEOJSON"):
        KommuneLocator.from_settings(
            Settings(data_dir=tmp_path, kommuner_geojson=tmp_path / "nope.geojson")
        )
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [{"properties": {}}]}', "utf-8")
    with pytest.raises(ConfigError, match="BYFLYT_KOMMUNER_GEOJSON"):
        KommuneLocator.from_settings(Settings(data_dir=tmp_path, kommuner_geojson=broken))


def test_empty_setting_means_the_shipped_boundaries(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path, kommuner_geojson="").kommuner_geojson is None  # type: ignore[arg-type]
