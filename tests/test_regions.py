"""Kommune history (SSB KLASS 131) and regions named the old way, through ``byflyt regions``.

The expected lists below are written from the reform decisions themselves (2020: Ålesund,
Skodje, Ørskog, Sandøy and Haram became 1507 Ålesund; Molde, Nesset and Midsund became 1506
Molde; Eide and Fræna became 1579 Hustadvika; Halsa joined Hemne and part of Snillfjord in 5055
Heim; 2024: Haram re-established whole as 1580 Haram), not computed from the shipped table.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest
from typer.testing import Result

from byflyt.errors import ConfigError
from byflyt.models.history import AmbiguousKommune, UnknownKommune, kommune_history
from byflyt.models.kommuner import get_region, kommune_names, load_regions
from tests.helpers import invoke, ok

HISTORY = kommune_history()


def today_numbers(text: str, day: date | None = None) -> set[str]:
    return {r.kommune.number for r in HISTORY.resolve(text, day)}


# -- the history table -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("day", "count"),
    [
        # SSB's counts: 426 kommuner in 2017, 422 after the 2018 mergers (Trøndelag, Færder,
        # Holmestrand, Larvik, Indre Fosen), 356 after the 2020 reform, 357 once Haram returned.
        (date(2017, 1, 1), 426),
        (date(2017, 12, 31), 426),
        (date(2018, 1, 1), 422),
        (date(2019, 1, 1), 422),
        (date(2019, 12, 31), 422),
        (date(2020, 1, 1), 356),
        (date(2023, 12, 31), 356),
        (date(2024, 1, 1), 357),
    ],
)
def test_kommuner_per_day(day: date, count: int) -> None:
    valid = HISTORY.on(day)
    assert len(valid) == count
    assert len({k.number for k in valid}) == count  # no number twice on one day


def test_every_ended_kommune_has_successors_valid_the_next_day() -> None:
    for row in HISTORY.rows:
        if row.valid_to is None:
            assert row.successors == (), row
            continue
        assert row.successors, f"{row.label} ends {row.valid_to} without a successor"
        day = row.valid_to + timedelta(days=1)
        for number in row.successors:
            successor = HISTORY.at(number, day)
            assert successor is not None, f"{row.label}: successor {number} not valid on {day}"


def test_rows_of_one_number_follow_each_other_without_gaps() -> None:
    numbers: dict[str, list[date | None]] = {}
    for row in HISTORY.rows:
        numbers.setdefault(row.number, []).extend([row.valid_from, row.valid_to])
    for number, bounds in numbers.items():
        ends, starts = bounds[1:-1:2], bounds[2::2]
        for end, start in zip(ends, starts, strict=True):
            assert end is not None, number
            assert start == end + timedelta(days=1), number


def test_todays_kommuner_are_the_shipped_2024_kommuner() -> None:
    assert {k.number for k in HISTORY.current} == set(kommune_names())
    assert len(HISTORY.current) == 357


def test_reform_years_change_what_the_reforms_changed() -> None:
    ended = Counter(row.valid_to.year + 1 for row in HISTORY.rows if row.valid_to)
    # Every Viken, Vestfold og Telemark and Troms og Finnmark kommune was renumbered in 2024.
    renumbered_2024 = [r for r in HISTORY.rows if r.valid_to == date(2023, 12, 31)]
    assert {r.number[:2] for r in renumbered_2024} >= {"30", "38", "54"}
    assert all(r.number[:2] not in {"30", "38", "54"} for r in HISTORY.current)
    assert ended[2020] > ended[2018] > ended[2019]


# -- resolving -------------------------------------------------------------------------------
def test_old_alesund_resolves_by_land() -> None:
    # 1504 Ålesund (2019) lies wholly in today's 1508 Ålesund; 1507 Ålesund (2020-2023) held
    # old Haram too, so it is both.
    assert today_numbers("1504", date(2018, 1, 1)) == {"1508"}
    assert today_numbers("Ålesund", date(2018, 1, 1)) == {"1508"}
    merged = HISTORY.resolve("1507", date(2021, 6, 1))
    assert {r.kommune.number for r in merged} == {"1508", "1580"}
    assert all(r.split for r in merged)
    assert today_numbers("Ålesund", date(2023, 12, 31)) == {"1508", "1580"}
    assert today_numbers("Haram", date(2018, 1, 1)) == {"1580"}
    assert today_numbers("Sandøy") == {"1508"}
    assert today_numbers("Skodje", date(2019, 5, 1)) == {"1508"}
    assert today_numbers("Ørskog") == {"1508"}


def test_moere_og_romsdal_2020_reform() -> None:
    assert today_numbers("Nesset", date(2018, 1, 1)) == {"1506"}
    assert today_numbers("Midsund", date(2018, 1, 1)) == {"1506"}
    assert today_numbers("1502", date(2019, 1, 1)) == {"1506"}
    assert today_numbers("Eide", date(2018, 1, 1)) == today_numbers("Fræna") == {"1579"}
    # SSB's change list moves all of 1571 Halsa to 5055 Heim (no part to Surnadal).
    halsa = HISTORY.resolve("Halsa", date(2018, 1, 1))
    assert [(r.kommune.number, r.split) for r in halsa] == [("5055", False)]
    assert "merged into 5055 Heim (2020)" in halsa[0].change


def test_splits_go_to_every_part() -> None:
    tysfjord = HISTORY.resolve("Tysfjord", date(2019, 1, 1))
    assert {r.kommune.number for r in tysfjord} == {"1806", "1875"}
    assert all(r.split for r in tysfjord)
    # Snillfjord was 1613, then 5012 (Trøndelag, 2018), then split three ways in 2020.
    assert today_numbers("1613", date(2017, 6, 1)) == {"5055", "5056", "5059"}
    assert today_numbers("Snillfjord") == {"5055", "5056", "5059"}


def test_2018_reform() -> None:
    spring_2017 = date(2017, 6, 1)
    assert today_numbers("Hof", spring_2017) == today_numbers("0702", spring_2017) == {"3903"}
    assert today_numbers("Tjøme", spring_2017) == {"3911"}  # Færder
    assert today_numbers("Rissa", spring_2017) == today_numbers("Leksvik") == {"5054"}
    # Sør- and Nord-Trøndelag became Trøndelag: no 16xx or 17xx number outlived 2017.
    trondelag = [r for r in HISTORY.on(spring_2017) if r.number[:2] in {"16", "17"}]
    assert trondelag
    assert {r.valid_to for r in trondelag} == {date(2017, 12, 31)}
    assert {n[:2] for r in trondelag for n in r.successors} == {"50"}


def test_renumbered_and_renamed() -> None:
    assert today_numbers("Nøtterøy", date(2017, 6, 1)) == {"3911"}  # Færder
    assert today_numbers("0101", date(2019, 1, 1)) == {"3101"}  # Halden via 3001
    assert today_numbers("3001", date(2022, 1, 1)) == {"3101"}
    assert today_numbers("5404", date(2023, 1, 1)) == {"5634"}  # Vardø
    assert today_numbers("Rindal", date(2018, 1, 1)) == {"5061"}
    assert today_numbers("Hammerfest", date(2018, 1, 1)) == {"5603"}
    assert today_numbers("Hámmerfeasta") == {"5603"}
    assert today_numbers("hamar kommune") == {"3403"}
    unchanged = HISTORY.resolve("3403")
    assert [r.change for r in unchanged] == ["unchanged"]


def test_shared_names_are_all_given_or_refused() -> None:
    both = HISTORY.resolve("Nes", date(2018, 1, 1))
    assert {r.named.number for r in both} == {"0236", "0616"}
    assert {r.kommune.number for r in both} == {"3228", "3322"}  # Nes, Nesbyen
    with pytest.raises(AmbiguousKommune) as refused:
        HISTORY.resolve_one("Nes", date(2018, 1, 1))
    assert "0236 Nes (Akershus)" in str(refused.value)
    assert "0616 Nes (Buskerud)" in str(refused.value)
    assert today_numbers("Nes (Buskerud)", date(2018, 1, 1)) == {"3322"}
    assert {k.number for k in HISTORY.find("Herøy")} == {"1515", "1818"}
    assert today_numbers("Våler (Hedmark)", date(2019, 1, 1)) == {"3419"}


def test_unknown_and_mismatched_queries() -> None:
    with pytest.raises(UnknownKommune, match="since 2017"):
        HISTORY.resolve("Atlantis")
    with pytest.raises(UnknownKommune, match="2017-01-01–2019-12-31"):
        HISTORY.resolve("Sandøy", date(2021, 1, 1))
    with pytest.raises(UnknownKommune, match="not 'Molde'"):
        HISTORY.resolve("1504 Molde", date(2018, 1, 1))


# -- regions -------------------------------------------------------------------------------


def run(*args: str, regions_file: Path | None = None) -> Result:
    regions = str(regions_file) if regions_file else None
    return invoke(None, "regions", *args, BYFLYT_REGIONS_FILE=regions)


def test_built_in_2018_regions_show_todays_kommuner(clean_env: Path) -> None:
    shown = ok(run("show", "alesundregionen", "--format", "csv"))
    assert shown == "kommune_nr,kommune\n1508,Ålesund\n1531,Sula\n1532,Giske\n1580,Haram\n"
    molde = ok(run("show", "molderegionen", "--format", "csv")).splitlines()
    assert molde == [
        "kommune_nr,kommune",
        "1506,Molde",
        "1535,Vestnes",
        "1539,Rauma",
        "1547,Aukra",
        "1579,Hustadvika",
    ]
    kristiansund = ok(run("show", "kristiansundregionen", "--format", "csv")).splitlines()
    assert kristiansund == [
        "kommune_nr,kommune",
        "1505,Kristiansund",
        "1554,Averøy",
        "1557,Gjemnes",
        "1560,Tingvoll",
        "1573,Smøla",
        "1576,Aure",
        "5055,Heim",
    ]
    # Heim lies in Trøndelag: the region's counting points are searched there too.
    assert get_region("kristiansundregionen").counties == ("15", "50")


def test_show_says_how_old_names_were_resolved(clean_env: Path) -> None:
    table = run("show", "alesundregionen")
    out = ok(table)
    assert "Ålesundregionen (alesundregionen): 4 kommuner" in out
    assert "1534 Haram → 1580 Haram" in out
    as_json = run("show", "alesundregionen", "--format", "json")
    assert [r["kommune_nr"] for r in json.loads(ok(as_json))] == ["1508", "1531", "1532", "1580"]
    assert "1546 Sandøy → 1508 Ålesund" in as_json.stderr


def test_list(clean_env: Path) -> None:
    lines = ok(run("list", "--format", "csv")).splitlines()
    assert lines[0] == "id,name,n_kommuner"
    rows = {line.split(",")[0]: line for line in lines[1:]}
    assert set(rows) == set(load_regions())
    assert rows["alesundregionen"] == "alesundregionen,Ålesundregionen,4"
    assert rows["mjosbyen"] == "mjosbyen,Mjøsbyen,9"
    assert "Kristiansundregionen" in ok(run("list"))


def test_resolve_csv(clean_env: Path) -> None:
    lines = ok(run("resolve", "1507", "--at", "2022-06-01", "--format", "csv")).splitlines()
    assert lines[0] == "query,kommune_nr,kommune,change"
    assert [line.split(",")[:3] for line in lines[1:]] == [
        ["1507", "1508", "Ålesund"],
        ["1507", "1580", "Haram"],
    ]
    assert all("split into 1508 Ålesund, 1580 Haram (2024)" in line for line in lines[1:])
    shared = run("resolve", "Nes", "--at", "2018-06-01", "--format", "csv")
    assert [line.split(",")[1] for line in ok(shared).splitlines()[1:]] == ["3228", "3322"]
    assert "0236 Nes (Akershus), 0616 Nes (Buskerud)" in shared.stderr
    unknown = run("resolve", "Atlantis")
    assert unknown.exit_code == 1
    assert unknown.stderr.count("\n") == 1
    bad_date = run("resolve", "Hamar", "--at", "2018")
    assert bad_date.exit_code == 2
    assert "--at" in bad_date.stderr


def test_help_attributes_the_data(clean_env: Path) -> None:
    helped = " ".join(ok(run("--help")).split())  # rich wraps the text to the terminal
    assert "© Kartverket" in helped
    assert "Statistics Norway (SSB)" in helped


def test_unknown_region_lists_the_known(clean_env: Path) -> None:
    missing = run("show", "atlantis")
    assert missing.exit_code == 2
    assert "unknown region 'atlantis'" in missing.stderr
    for key in ("alesundregionen", "kristiansundregionen", "mjosbyen", "osloregionen"):
        assert key in missing.stderr


def test_regions_file_with_old_numbers(clean_env: Path, caplog: pytest.LogCaptureFixture) -> None:
    regions_file = clean_env / "regions.json"
    regions_file.write_text(
        json.dumps(
            {
                "sunnmore": {
                    "name": "Sunnmøre (2018)",
                    "as_of": 2018,
                    "kommuner": ["1504", 1534, "Sandøy", "1532 Giske", "Stordal"],
                },
                "mjosbyen": {"name": "Mjøsbyen (kort)", "kommuner": ["3403", "Gjøvik"]},
            }
        ),
        "utf-8",
    )
    with caplog.at_level(logging.WARNING, logger="byflyt.models.kommuner"):
        first = load_regions(regions_file)
        load_regions(regions_file)
    assert first["sunnmore"].kommuner == ("1508", "1580", "1532", "1578")  # Stordal: Fjord
    assert first["sunnmore"].counties == ("15",)
    assert first["mjosbyen"].kommuner == ("3403", "3407")
    said = [r.getMessage() for r in caplog.records if "sunnmore" in r.getMessage()]
    assert len(said) == 1  # once, however often the regions are read
    assert "1534 (1534 Haram) → 1580 Haram" in said[0]
    shown = ok(run("show", "sunnmore", "--format", "csv", regions_file=regions_file))
    assert shown.splitlines()[1:] == ["1508,Ålesund", "1532,Giske", "1578,Fjord", "1580,Haram"]


@pytest.mark.parametrize(
    ("entries", "words"),
    [
        (["1504", "Atlantis"], ["'Atlantis'", "no kommune known on 2018-01-01"]),
        (["Nes"], ["0236 Nes (Akershus)", "0616 Nes (Buskerud)", "'0236' or '0616'"]),
        (["3403"], ["'3403'", "3403 Hamar since 2020-01-01"]),
        (["1504 Molde"], ["1504 was Ålesund on 2018-01-01, not 'Molde'"]),
    ],
)
def test_unresolvable_entries_are_refused_with_one_line(
    clean_env: Path, entries: list[object], words: list[str]
) -> None:
    regions_file = clean_env / "regions.json"
    regions_file.write_text(json.dumps({"x": {"as_of": "2018-01-01", "kommuner": entries}}))
    with pytest.raises(ConfigError) as refused:
        load_regions(regions_file)
    message = str(refused.value)
    assert message.startswith("BYFLYT_REGIONS_FILE: region 'x' in ")
    assert "\n" not in message
    for word in words:
        assert word in message
    shown = run("show", "x", regions_file=regions_file)
    assert shown.exit_code == 2
    assert shown.stderr.count("\n") == 1
    assert "BYFLYT_REGIONS_FILE" in shown.stderr


def test_bad_as_of_is_refused(clean_env: Path) -> None:
    regions_file = clean_env / "regions.json"
    regions_file.write_text(json.dumps({"x": {"as_of": "last year", "kommuner": ["3403"]}}))
    with pytest.raises(ConfigError, match="as_of 'last year' is not a date"):
        load_regions(regions_file)


def test_readme_regions_file_example(clean_env: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text("utf-8")
    section = readme.split("### Regions", 1)[1].split("\n### ", 1)[0]
    example = section.split("```json\n", 1)[1].split("```", 1)[0]
    regions_file = clean_env / "regions.json"
    regions_file.write_text(example, "utf-8")
    assert load_regions(regions_file)["sunnmore"].kommuner == ("1508", "1580", "1531")
