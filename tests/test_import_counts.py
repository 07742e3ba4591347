"""``byflyt import counts``: a Norwegian spreadsheet export (BOM, ``;``, decimal comma,
``dd.mm.yyyy``) and an ISO one with a mapping, through the real broker and worker; bad rows go
to the dead-letter topic with their line numbers and the rest is imported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from byflyt.connectors.csv_counts import CsvCountsConnector, when
from byflyt.models.envelope import Rejected
from byflyt.settings import Settings
from byflyt.store import Store
from tests.cycling_expect import PointHours, kommune_hours
from tests.helpers import byflyt, queried_rows
from tests.kafka_util import read_all

SPREADSHEET = (
    "\ufeffpoint_id;name;lat;lon;kommune_nr;start;end;mode;count\n"
    "H1;Torget Hamar;60,7945;11,0680;;22.10.2025 07:00;22.10.2025 07:15;sykkel;12\n"
    "H1;Torget Hamar;60,7945;11,0680;;22.10.2025 07:15;22.10.2025 07:30;sykkel;9\n"
    "H1;Torget Hamar;60,7945;11,0680;;22.10.2025 07:20;22.10.2025 07:30;sykkel;9\n"  # overlaps
    "H2;Torget Hamar gående;60,7945;11,0680;;22.10.2025 07:00;22.10.2025 08:00;gående;30\n"
    "G1;Gjøvik gågate;;;3407;22.10.2025 08:00;22.10.2025 09:00;fotgjenger;40\n"
    "G1;Gjøvik gågate;;;3407;22.10.2025;23.10.2025;fotgjenger;400\n"  # a daily count
    "X1;Nowhere;;;;22.10.2025 07:00;22.10.2025 07:15;sykkel;3\n"  # not placed
    "H1;Torget Hamar;60,7945;11,0680;;22.10.2025 08:00;22.10.2025 08:30;sykkel;-4\n"
    "L1;Lillehammer;;;3405;26.10.2025 02:30;26.10.2025 02:45;sykkel;2,0\n"
)
EXPORT = (
    "Tellepunkt,Sted,Kommune,Fra,Til,Type,Antall\n"
    "E1,Elverum bru,3420,2025-10-22T07:00+02:00,2025-10-22T07:30+02:00,bike,5\n"
    "E1,Elverum bru,3420,2025-10-22T07:30+02:00,2025-10-22T08:00+02:00,bike,7\n"
    "E2,Elverum torg,3420,2025-10-22T07:00+02:00,2025-10-22T08:00+02:00,walk,11\n"
)
MAPPING = """
[columns]
point_id = "Tellepunkt"
name = "Sted"
kommune_nr = "Kommune"
start = "Fra"
end = "Til"
mode = "Type"
count = "Antall"

[modes]
walk = "pedestrian"
"""
HOUR = timedelta(hours=1)
UTC5, UTC6 = (datetime(2025, 10, 22, h, tzinfo=UTC) for h in (5, 6))


def test_norwegian_and_iso_times() -> None:
    assert when("22.10.2025 07:15") == datetime(2025, 10, 22, 5, 15, tzinfo=UTC)
    assert when("1.1.2025") == datetime(2024, 12, 31, 23, tzinfo=UTC)
    assert when("2025-10-22T07:00+02:00") == UTC5
    with pytest.raises(ValueError, match="not a time"):
        when("22/10/2025")


def test_a_header_without_the_columns_is_one_rejection(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a;b\n1;2\n", encoding="utf-8")
    connector = CsvCountsConnector(Settings(), path, source="manuell")
    result = connector.poll(path, None, lambda request, what: request())
    assert result.records == []
    assert len(result.rejected) == 1
    assert (
        "no point_id, start, end, mode, count, kommune_nr or lat and lon"
        in result.rejected[0].reason
    )


@pytest.mark.kafka
@pytest.mark.slow
def test_done_when_spreadsheet_and_export_through_the_worker(
    worker_env: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    sheet = tmp_path / "manuelle.csv"
    sheet.write_bytes(SPREADSHEET.encode("utf-8"))
    export = tmp_path / "export.csv"
    export.write_text(EXPORT, encoding="cp1252")
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(MAPPING, encoding="utf-8")

    out = byflyt(worker_env, "import", "counts", str(sheet), "--source", "manuell").stdout
    assert out.strip() == (
        "import counts manuelle.csv (manuell): 9 rows, 4 points, 4 hourly observations, 4 rejected"
    )
    out = byflyt(
        worker_env,
        "import",
        "counts",
        str(export),
        "--source",
        "elverum",
        "--mapping",
        str(mapping),
    ).stdout
    assert "3 rows, 2 points, 2 hourly observations, 0 rejected" in out

    dead = [
        Rejected.from_bytes(v) for _, v in read_all(settings, settings.topic("dlq.rejected")) if v
    ]
    assert sorted(d.context["line"] for d in dead) == ["4", "7", "8", "9"]
    reasons = {d.context["line"]: d.reason for d in dead}
    assert "overlaps line 3" in reasons["4"]
    assert "longer than an hour" in reasons["7"]
    assert "neither kommune_nr nor lat and lon" in reasons["8"]
    assert "not a whole number" in reasons["9"]
    assert {d.source for d in dead} == {"manuell"}

    byflyt(worker_env, "worker", "--drain")
    l1 = datetime(2025, 10, 26, 0, tzinfo=UTC)  # 02:30 local on the 26th, summer time (first)
    points: PointHours = {
        ("3403", "bicycle", "H1", UTC5): (21, 50.0),
        ("3403", "pedestrian", "H2", UTC5): (30, 100.0),
        ("3407", "pedestrian", "G1", UTC6): (40, 100.0),
        ("3405", "bicycle", "L1", l1): (2, 25.0),
        ("3420", "bicycle", "E1", UTC5): (12, 100.0),
        ("3420", "pedestrian", "E2", UTC5): (11, 100.0),
    }
    want = kommune_hours(points)
    for mode in ("bicycle", "pedestrian"):
        assert queried_rows(worker_env, mode, "2025-10-22", "2025-10-27") == [
            r for r in want if r[2] == mode
        ]
    # A manual count was asked for exactly over the hours it covers.
    with Store(settings.database_url) as store:
        windows = {(w.point_id, w.since, w.until) for w in store.query_fetched()}
    assert windows == {(point, hour, hour + HOUR) for _, _, point, hour in points}
