"""``byflyt report``: a store built from the demo week (and a base-year week), the report
written through the CLI, and every workbook table checked against the store; the HTML parsed
for its sections, its inline figures and its synthetic-data heading.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet
from selenium.webdriver.common.by import By
from typer.testing import Result

from byflyt.clock import OSLO
from byflyt.models.counts import CountObservation, CountPoint
from byflyt.models.kommuner import get_region, kommune_name
from byflyt.models.transit import FlowHour
from byflyt.models.volumes import HourlyVolume
from byflyt.queries.index import parse_period
from byflyt.queries.indicators import load_index
from byflyt.reports.report import SECTION_ORDER
from byflyt.samples.trafikkdata import SILENT_POINT, TrafikkdataDataset, generate, mjosbyen_week
from byflyt.store import Store
from tests.browser import chromium, screenshot
from tests.cycling_expect import expected_rows
from tests.helpers import invoke, kommune_hour

HOUR = timedelta(hours=1)
MJOSBYEN = get_region("mjosbyen")
OCTOBER = parse_period("2025-10")
MIN_HOURS = "100"
PNG = b"\x89PNG\r\n\x1a\n"


def observations(dataset: TrafikkdataDataset, rename: str = "") -> list[CountObservation]:
    kommune = {p.id: p.municipality_number for p in dataset.points if p.traffic_type == "BICYCLE"}
    return [
        CountObservation(
            source="trafikkdata",
            point_id=pid,
            kommune_nr=kommune[pid],
            start=hour,
            end=hour + HOUR,
            volume=value.volume,
            coverage=value.coverage,
        )
        for pid, hours in dataset.hours.items()
        if pid in kommune
        for hour, value in sorted(hours.items())
    ]


def transit_flows() -> list[FlowHour]:
    """Vehicle trips across kommune boundaries: into and out of Mjøsbyen, and within it."""

    def flow(a: str, b: str, mode: str, day: int, hour: int, trips: int) -> FlowHour:
        when = datetime(2025, 10, 1, hour, tzinfo=OSLO).astimezone(UTC) + timedelta(days=day - 1)
        return FlowHour(from_kommune=a, to_kommune=b, mode=mode, hour_start=when, trips=trips)

    return [
        flow("3240", "3413", "rail", 22, 7, 3),  # Eidsvoll → Stange: into the region
        flow("3405", "3437", "rail", 22, 9, 1),  # Lillehammer → Sel: out
        flow("3413", "3240", "rail", 23, 16, 2),  # Stange → Eidsvoll: out
        flow("3403", "3413", "rail", 23, 8, 4),  # Hamar → Stange: within, not counted
        flow("3407", "3446", "bus", 22, 8, 5),  # Gjøvik → Gran: out
        flow("3240", "0301", "rail", 22, 7, 9),  # neither end in the region
        flow("3240", "3413", "rail", 0, 7, 8),  # 30 September: another period
    ]


def transit_rows() -> list[HourlyVolume]:
    def row(kommune: str, mode: str, metric: str, day: int, hour: int, value: float, cov: float):
        when = datetime(2025, 10, day, hour, tzinfo=OSLO).astimezone(UTC)
        return kommune_hour(kommune, when, value, mode=mode, metric=metric, coverage=cov)

    rows = []
    for day, scale in ((22, 1), (23, 2)):
        for kommune, mode, base in (("3403", "bus", 40), ("3403", "rail", 6), ("3405", "bus", 25)):
            rows += [
                row(kommune, mode, "departures", day, 8, base * scale, 96.0),
                row(kommune, mode, "trips", day, 8, base // 4 * scale, 96.0),
                row(kommune, mode, "cancelled_calls", day, 8, scale, 96.0),
                row(kommune, mode, "delay_count", day, 8, base * scale - 2, 96.0),
                row(kommune, mode, "on_time_calls", day, 8, base * scale - 5, 96.0),
            ]
    rows.append(row("3403", "bus", "vehicles_active", 22, 9, 12, 100.0))
    rows.append(row("0301", "bus", "departures", 22, 8, 9999, 100.0))  # Oslo: not Mjøsbyen
    return rows


def fill(store: Store, *, synthetic_names: bool = True) -> None:
    current, base = (
        mjosbyen_week(2),
        generate(start=datetime(2024, 10, 22, tzinfo=OSLO), days=7, seed=11, version=2),
    )
    store.upsert_points(
        CountPoint(
            source="trafikkdata",
            point_id=p.id,
            name=p.name if synthetic_names else p.name.replace(" (syntetisk)", ""),
            kommune_nr=p.municipality_number,
            mode="bicycle",
        )
        for p in current.points
        if p.traffic_type == "BICYCLE"
    )
    obs = observations(base) + observations(current)
    store.upsert_point_hourly(obs)
    store.upsert_kommune_hourly(
        HourlyVolume(
            kommune_nr=k, mode=m, metric=metric, hour_start=h, value=v, coverage=c, n_sources=n
        )
        for k, m, metric, h, v, c, n in expected_rows(obs)
    )
    store.write_transit(transit_rows(), transit_flows())
    silent_day = datetime(2025, 10, 24, tzinfo=OSLO)
    store.upsert_outage(
        "trafikkdata", SILENT_POINT, "silent", silent_day, silent_day + timedelta(days=1), "3407"
    )
    store.upsert_outage("gtfs-rt:inn", "feed", "silent", silent_day + 10 * HOUR, None)
    may = datetime(2025, 5, 2, tzinfo=OSLO)
    store.upsert_outage("trafikkdata", SILENT_POINT, "flat", may, may + HOUR, "3407")
    store.upsert_outage("trafikkdata", "x", "silent", silent_day, None, "0301")  # Oslo


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('report') / 'byflyt.sqlite'}"
    with Store(url) as store:
        fill(store)
    return url


def run(store_url: str, *args: str) -> Result:
    return invoke(store_url, "report", *args)


@pytest.fixture(scope="module")
def written(store_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("out")
    args = ("--region", "mjosbyen", "--year", "2025", "--month", "10", "--min-hours", MIN_HOURS)
    result = run(store_url, *args, "--out", str(out))
    assert result.exit_code == 0, result.stderr
    paths = {
        line.split(": ", 1)[0]: Path(line.split(": ", 1)[1]) for line in result.stdout.splitlines()
    }
    assert set(paths) == {"HTML", "XLSX"}
    assert all(p.is_file() for p in paths.values())
    return paths


def sheet_records(sheet: Worksheet) -> list[dict[str, object]]:
    rows = list(sheet.iter_rows(values_only=True))
    header = rows[0]
    return [dict(zip(header, row, strict=True)) for row in rows[1:]]


# -- the workbook against the store ----------------------------------------------------------
def test_workbook_has_one_frozen_typed_sheet_per_table(written: dict[str, Path]) -> None:
    book = load_workbook(written["XLSX"])
    assert book.sheetnames == [
        "Sykkel per måned",
        "Indeks",
        "Indeks per punkt",
        "Kollektiv",
        "Inn og ut",
        "Avbrudd",
        "Datakvalitet",
        "Kilder",
    ]
    for sheet in book.worksheets:
        assert sheet.freeze_panes == "A2", sheet.title
        assert all(cell.font.bold for cell in sheet[1]), sheet.title
    monthly = book["Sykkel per måned"]
    assert monthly["C2"].is_date
    # Excel has no time zones: a cell's wall clock is Europe/Oslo.
    assert monthly["C2"].value.replace(tzinfo=OSLO) == datetime(2025, 10, 1, tzinfo=OSLO)
    assert monthly["D2"].data_type == "n"
    assert isinstance(monthly["D2"].value, int)


def test_cycling_monthly_matches_the_store(written: dict[str, Path], store_url: str) -> None:
    start, end = OCTOBER.bounds()
    with Store(store_url) as store:
        rows = store.query_hourly(
            kommuner=list(MJOSBYEN.kommuner), mode="bicycle", metric="volume", start=start, end=end
        )
    volume: dict[str, float] = defaultdict(float)
    hours: dict[str, int] = defaultdict(int)
    for row in rows:
        volume[row.kommune_nr] += row.value
        hours[row.kommune_nr] += 1
    records = sheet_records(load_workbook(written["XLSX"])["Sykkel per måned"])
    assert {r["Kommunenr."]: r["Syklende"] for r in records} == volume
    assert {r["Kommunenr."]: r["Timer med data"] for r in records} == hours
    # October 2025 has 31·24 + 1 hours; the week's hours are all that have data.
    for r in records:
        assert 0 < r["Dekning %"] < 100 * 170 / 745
    assert "3412" not in volume  # Løten has no counter in the sample


def test_index_matches_the_store(written: dict[str, Path], store_url: str) -> None:
    with Store(store_url) as store:
        result = load_index(
            store,
            mode="bicycle",
            kommuner=list(MJOSBYEN.kommuner),
            period=OCTOBER,
            min_hours=int(MIN_HOURS),
        )
    records = sheet_records(load_workbook(written["XLSX"])["Indeks"])
    assert len(records) == len(MJOSBYEN.kommuner) + 1
    region = records[-1]
    assert str(region["Område"]).endswith("Mjøsbyen")
    assert region["Indeks %"] == pytest.approx(result.area.index, abs=0.005)
    assert region["KI nedre %"] == pytest.approx(result.area.ci_low, abs=0.005)
    assert region["KI øvre %"] == pytest.approx(result.area.ci_high, abs=0.005)
    assert region["Punkter"] == result.area.n >= 2
    assert region["Sammenlignbare timer"] == result.area.matched_hours
    for record in records[:-1]:
        mine = result.for_kommune(str(record["Kommunenr."]))
        assert record["Punkter"] == mine.n
        if mine.index is None:
            assert record["Indeks %"] is None
        else:
            assert record["Indeks %"] == pytest.approx(mine.index, abs=0.005)
        if mine.n < 2:
            assert record["KI nedre %"] is None
    points = sheet_records(load_workbook(written["XLSX"])["Indeks per punkt"])
    assert len(points) == len(result.matched)
    assert {p["Status"] for p in points} >= {"med", "utelatt: for få sammenlignbare timer"}


def test_transit_matches_the_store(written: dict[str, Path], store_url: str) -> None:
    start, end = OCTOBER.bounds()
    with Store(store_url) as store:
        rows = store.query_hourly(kommuner=list(MJOSBYEN.kommuner), start=start, end=end)
    sums: dict[tuple[str, str, str], float] = defaultdict(float)
    for row in rows:
        if row.mode != "bicycle":
            sums[(row.kommune_nr, row.mode, row.metric)] += row.value
    records = sheet_records(load_workbook(written["XLSX"])["Kollektiv"])
    # The report shows the mode as a reader says it, in the report's language.
    assert [(r["Kommunenr."], r["Reisemåte"]) for r in records] == [
        ("3403", "buss"),
        ("3403", "tog"),
        ("3405", "buss"),
    ]
    code = {"buss": "bus", "tog": "rail"}
    for r in records:
        key = (str(r["Kommunenr."]), code[str(r["Reisemåte"])])
        assert r["Avganger"] == sums[(*key, "departures")]
        assert r["Innstilte anløp"] == sums[(*key, "cancelled_calls")]
        assert r["Turer (sum per time)"] == sums[(*key, "trips")]
        punctual = 100 * sums[(*key, "on_time_calls")] / sums[(*key, "delay_count")]
        assert r["Punktlighet %"] == pytest.approx(punctual, abs=0.05)
        assert r["Dekning %"] == pytest.approx(96.0)


def test_trips_into_and_out_of_the_region_by_mode(written: dict[str, Path]) -> None:
    records = sheet_records(load_workbook(written["XLSX"])["Inn og ut"])
    assert records == [
        {"Reisemåte": "buss", "Turer inn": 0, "Turer ut": 5},
        {"Reisemåte": "tog", "Turer inn": 3, "Turer ut": 3},
    ]


def test_outages_and_data_quality_match_the_store(written: dict[str, Path], store_url: str) -> None:
    book = load_workbook(written["XLSX"])
    outages = sheet_records(book["Avbrudd"])
    assert [(o["Type"], o["Kilde"], o["Art"]) for o in outages] == [
        ("teller", "trafikkdata", "silent"),
        ("datastrøm", "gtfs-rt:inn", "silent"),
    ]
    assert outages[0]["Start"].replace(tzinfo=OSLO) == datetime(2025, 10, 24, tzinfo=OSLO)
    assert outages[0]["Varighet (timer)"] == 24.0
    assert outages[1]["Slutt"] is None
    start, end = OCTOBER.bounds()
    with Store(store_url) as store:
        hours = store.query_point_hourly(kommuner=list(MJOSBYEN.kommuner), start=start, end=end)
    with_data: dict[str, int] = defaultdict(int)
    for h in hours:
        with_data[h.point_id] += h.volume is not None
    quality = sheet_records(book["Datakvalitet"])
    assert {q["Punkt"]: q["Timer med data"] for q in quality} == with_data
    assert {q["Timer i perioden"] for q in quality} == {745}  # October 2025: 31 days + 1 hour
    sources = sheet_records(book["Kilder"])
    licences = {str(s["Kilde"]).split(",")[0].split(" ")[0]: s["Lisens"] for s in sources}
    assert licences == {"Trafikkdata": "NLOD", "Entur": "NLOD", "Kommunegrenser": "CC BY 4.0"}


# -- the HTML --------------------------------------------------------------------------------
@dataclass
class Page(HTMLParser):
    sections: list[str] = field(default_factory=list)
    h1: str = ""
    headings: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    tables: int = 0
    lang: str = ""
    _in: str = ""

    def __post_init__(self) -> None:
        super().__init__()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "html":
            self.lang = values.get("lang") or ""
        if tag == "section":
            self.sections.append(values.get("id") or "")
        if tag == "img":
            self.images.append(values.get("src") or "")
        if tag == "table":
            self.tables += 1
        if tag in ("link", "script") or (values.get("href") or "").startswith("http"):
            self.external.append(tag)
        if tag in ("h1", "h2"):
            self._in = tag

    def handle_endtag(self, tag: str) -> None:
        self._in = ""

    def handle_data(self, data: str) -> None:
        if self._in == "h1":
            self.h1 += data
        elif self._in == "h2":
            self.headings.append(data)


def parse(path: Path) -> tuple[Page, str]:
    text = path.read_text("utf-8")
    page = Page()
    page.feed(text)
    return page, text


def test_html_is_self_contained_with_every_section(written: dict[str, Path]) -> None:
    page, text = parse(written["HTML"])
    assert page.lang == "nb"
    # No pedestrian counting point in this store: no walking section.
    sections = [key for key in SECTION_ORDER if key != "walking_monthly"]
    assert page.sections == sections
    assert page.tables == len(sections) - 1
    assert page.external == []
    assert "<style>" in text
    assert len(page.images) == 3
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    assert "Mjøsbyen, oktober 2025" in page.h1
    assert "SYNTETISKE DATA / SYNTHETIC DATA" in text.split("</header>")[0]
    assert "Sykkel per måned og kommune" in page.headings
    assert "NLOD" in text
    assert "© Kartverket, CC BY 4.0" in text
    assert "01.10.2024–31.10.2024" in text  # the base period, Oslo dates


def test_english_year_report_and_measured_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'byflyt.sqlite'}"
    with Store(url) as store:
        fill(store, synthetic_names=False)
    result = run(
        url, "--region", "mjosbyen", "--year", "2025", "--lang", "en", "--out", str(tmp_path)
    )
    assert result.exit_code == 0, result.stderr
    html_path = tmp_path / "byflyt-mjosbyen-2025-en.html"
    page, text = parse(html_path)
    assert page.lang == "en"
    assert "Mjøsbyen, 2025" in page.h1
    assert "SYNTHETIC" not in text
    assert "Cycling per month and kommune" in page.headings
    book = load_workbook(tmp_path / "byflyt-mjosbyen-2025-en.xlsx")
    assert book.sheetnames[0] == "Cycling monthly"
    index = sheet_records(book["Index"])
    # The default --min-hours (168: every matched hour of the one-week sample) applies.
    with Store(url) as store:
        expected = load_index(
            store,
            mode="bicycle",
            kommuner=list(MJOSBYEN.kommuner),
            period=parse_period("2025"),
            min_hours=168,
        )
    assert 0 < index[-1]["Points"] == expected.area.n < 11
    assert index[-1]["Index %"] == pytest.approx(expected.area.index, abs=0.005)
    quality = sheet_records(book["Data quality"])
    assert {q["Hours in period"] for q in quality} == {8760}
    assert {q["Kommune"] for q in quality} <= {kommune_name(k) for k in MJOSBYEN.kommuner}
    assert (
        run(
            url, "--region", "mjosbyen", "--year", "2025", "--synthetic", "--out", str(tmp_path)
        ).exit_code
        == 0
    )
    assert "SYNTETISKE DATA" in (tmp_path / "byflyt-mjosbyen-2025-nb.html").read_text("utf-8")


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("--region", "atlantis", "--year", "2025"), "--region"),
        (("--year", "2025"), "--region"),
        (("--region", "mjosbyen", "--year", "2025", "--month", "13"), "--month"),
        (("--region", "mjosbyen", "--year", "25"), "--year"),
        (("--region", "mjosbyen", "--year", "2025", "--lang", "de"), "--lang"),
    ],
)
def test_bad_input_is_one_line_naming_the_flag(
    tmp_path: Path, args: tuple[str, ...], flag: str
) -> None:
    result = run(f"sqlite:///{tmp_path / 's.sqlite'}", *args, "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert flag in lines[0]
    assert not (tmp_path / "out").exists()


def test_report_period_and_date_helpers() -> None:
    from byflyt.i18n import format_date, format_number, metric_name, mode_name, month_name
    from byflyt.reports.report import period_for

    assert period_for(2025, 12).end == date(2026, 1, 1)
    assert period_for(2024, None).end == date(2025, 1, 1)
    # CLDR's bokmål (Babel): decimal comma, no-break space between thousands.
    assert format_number(12345.67, "nb", 1) == "12\xa0345,7"
    assert format_number(1234567, "nb") == "1\xa0234\xa0567"
    assert format_number(-3.5, "nb", 1) in {"-3,5", "−3,5"}
    assert format_number(12345.67, "en", 1) == "12,345.7"
    assert format_date(date(2025, 10, 26), "nb") == "26.10.2025"
    assert month_name(10, "nb") == "oktober"
    assert month_name(10, "en") == "October"
    assert mode_name("bus", "nb") == "buss"
    assert mode_name("rail", "en") == "rail"
    assert mode_name("hovercraft", "nb") == "hovercraft"
    assert metric_name("departures", "nb") == "avganger"


@pytest.mark.slow
@pytest.mark.browser
def test_report_renders_in_headless_chromium(written: dict[str, Path], tmp_path: Path) -> None:
    """The HTML report as a browser shows it: heading, every plot decoded, a screenshot saved."""
    with chromium(width=1200, height=900) as driver:
        driver.get(written["HTML"].resolve().as_uri())
        heading = driver.find_element(By.TAG_NAME, "h1").text
        assert "Mjøsbyen, oktober 2025" in heading
        assert "SYNTETISKE DATA" in driver.find_element(By.TAG_NAME, "header").text.upper()
        widths = driver.execute_script(
            "return Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0);"
        )
        assert len(widths) == 3
        assert all(w > 100 for w in widths), widths
        height = driver.execute_script("return document.documentElement.scrollHeight;")
        driver.set_window_size(1200, min(int(height) + 100, 12_000))
        shot = screenshot(driver, tmp_path, "report-mjosbyen-2025-10.png")
    assert shot.stat().st_size > 50_000
