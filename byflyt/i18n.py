"""byflyt's words in Norwegian bokmål (the default) and English: one catalogue, one set of formats.

The live page and the indicator report both read :data:`MESSAGES`; modes and metrics have their
names here (``mode_bus`` → "buss"/"bus", ``metric_departures`` → "avganger"/"departures"), so no
raw code reaches a reader. Numbers, dates and month names follow Babel's CLDR locales (``nb``:
decimal comma, no-break-space thousands, "oktober"); times shown to people are Europe/Oslo.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal

from babel.dates import get_month_names
from babel.numbers import format_decimal

from byflyt.clock import OSLO

Lang = Literal["nb", "en"]
LANGS: tuple[Lang, ...] = ("nb", "en")
_LOCALE: dict[Lang, str] = {"nb": "nb_NO", "en": "en_GB"}

MESSAGES: dict[str, dict[Lang, str]] = {
    # the live page (and modes and metrics, which the report shares)
    "title": {
        "nb": "byflyt – direkte",
        "en": "byflyt – live",
    },
    "all_kommuner": {
        "nb": "Alle kommuner",
        "en": "All kommuner",
    },
    "synthetic": {
        "nb": "Syntetiske data: tallene er laget for demonstrasjon, ikke målt.",
        "en": "Synthetic data: these numbers are made up for demonstration, not measured.",
    },
    "updated": {
        "nb": "Oppdatert",
        "en": "Updated",
    },
    "stale_page": {
        "nb": "Får ikke kontakt med serveren; viser siste kjente tall.",
        "en": "Cannot reach the server; showing the last known numbers.",
    },
    "volumes": {
        "nb": "Volum per time",
        "en": "Hourly volumes",
    },
    "kommune": {
        "nb": "Kommune",
        "en": "Kommune",
    },
    "mode": {
        "nb": "Reisemåte",
        "en": "Mode",
    },
    "metric": {
        "nb": "Mål",
        "en": "Metric",
    },
    "current_hour": {
        "nb": "Siste time",
        "en": "Latest hour",
    },
    "previous_hour": {
        "nb": "Timen før",
        "en": "Hour before",
    },
    "coverage": {
        "nb": "dekning",
        "en": "coverage",
    },
    "no_data": {
        "nb": "Ingen data ennå.",
        "en": "No data yet.",
    },
    "sensors": {
        "nb": "Tellere og strømmer",
        "en": "Counters and feeds",
    },
    "sensor": {
        "nb": "Teller / strøm",
        "en": "Counter / feed",
    },
    "state": {
        "nb": "Tilstand",
        "en": "State",
    },
    "since": {
        "nb": "Siden",
        "en": "Since",
    },
    "freshness": {
        "nb": "Ferskhet",
        "en": "Freshness",
    },
    "source": {
        "nb": "Kilde",
        "en": "Source",
    },
    "newest": {
        "nb": "Nyeste time",
        "en": "Newest hour",
    },
    "age": {
        "nb": "Alder",
        "en": "Age",
    },
    "count": {
        "nb": "Antall",
        "en": "Count",
    },
    "topics": {
        "nb": "Kafka-emner",
        "en": "Kafka topics",
    },
    "topics_connected": {
        "nb": "tilkoblet",
        "en": "connected",
    },
    "topics_disconnected": {
        "nb": "ikke tilkoblet",
        "en": "not connected",
    },
    "topics_off": {
        "nb": "ikke fulgt",
        "en": "not followed",
    },
    "times_note": {
        "nb": "Tider i norsk tid (Europe/Oslo).",
        "en": "Times in Norwegian time (Europe/Oslo).",
    },
    "hours_short": {
        "nb": "t",
        "en": "h",
    },
    "minutes_short": {
        "nb": "min",
        "en": "min",
    },
    "state_up": {
        "nb": "i drift",
        "en": "up",
    },
    "state_silent": {
        "nb": "taus",
        "en": "silent",
    },
    "state_flat": {
        "nb": "flat",
        "en": "flat",
    },
    "state_low_coverage": {
        "nb": "lav dekning",
        "en": "low coverage",
    },
    "state_stale": {
        "nb": "foreldet",
        "en": "stale",
    },
    "state_empty": {
        "nb": "tom",
        "en": "empty",
    },
    "mode_bicycle": {
        "nb": "sykkel",
        "en": "bicycle",
    },
    "mode_pedestrian": {
        "nb": "gange",
        "en": "walking",
    },
    "mode_bus": {
        "nb": "buss",
        "en": "bus",
    },
    "mode_rail": {
        "nb": "tog",
        "en": "rail",
    },
    "mode_coach": {
        "nb": "ekspressbuss",
        "en": "coach",
    },
    "mode_tram": {
        "nb": "trikk",
        "en": "tram",
    },
    "mode_metro": {
        "nb": "T-bane",
        "en": "metro",
    },
    "mode_ferry": {
        "nb": "ferje/båt",
        "en": "ferry",
    },
    "metric_volume": {
        "nb": "passeringer",
        "en": "passages",
    },
    "metric_departures": {
        "nb": "avganger",
        "en": "departures",
    },
    "other_lang": {
        "nb": "English",
        "en": "Norsk",
    },
    "data_attribution": {
        "nb": "Data: Statens vegvesen Trafikkdata og Entur (NLOD).",
        "en": "Data: Statens vegvesen Trafikkdata and Entur (NLOD).",
    },
    "mode_other": {
        "nb": "annet",
        "en": "other",
    },
    "mode_unknown": {
        "nb": "ukjent",
        "en": "unknown",
    },
    "mode_air": {
        "nb": "fly",
        "en": "air",
    },
    "mode_taxi": {
        "nb": "taxi",
        "en": "taxi",
    },
    "mode_all": {
        "nb": "alle",
        "en": "all",
    },
    "metric_cancelled_calls": {
        "nb": "innstilte anløp",
        "en": "cancelled calls",
    },
    "metric_trips": {
        "nb": "turer",
        "en": "trips",
    },
    "metric_delay_seconds_sum": {
        "nb": "sum forsinkelse (s)",
        "en": "delay sum (s)",
    },
    "metric_delay_count": {
        "nb": "anløp med kjent forsinkelse",
        "en": "calls with known delay",
    },
    "metric_on_time_calls": {
        "nb": "anløp i rute",
        "en": "on-time calls",
    },
    "metric_trips_out": {
        "nb": "turer ut",
        "en": "trips out",
    },
    "metric_trips_in": {
        "nb": "turer inn",
        "en": "trips in",
    },
    "metric_vehicles_active": {
        "nb": "kjøretøy i drift",
        "en": "vehicles in service",
    },
    # the report
    "report_title": {
        "nb": "Byflyt-rapport",
        "en": "byflyt report",
    },
    "report_synthetic": {
        "nb": "SYNTETISKE DATA / SYNTHETIC DATA",
        "en": "SYNTHETIC DATA / SYNTETISKE DATA",
    },
    "synthetic_note": {
        "nb": "Tallene i denne rapporten er laget av byflyts eksempeldata, ikke målt.",
        "en": (
            "The numbers in this report come from byflyt's made-up sample data, not measurements."
        ),
    },
    "generated": {
        "nb": "Laget",
        "en": "Generated",
    },
    "period": {
        "nb": "Periode",
        "en": "Period",
    },
    "base_period": {
        "nb": "sammenlignet med",
        "en": "compared with",
    },
    "dates_note": {
        "nb": "Datoer og klokkeslett er norsk tid (Europe/Oslo).",
        "en": "Dates and times are Norwegian time (Europe/Oslo).",
    },
    "cycling_monthly": {
        "nb": "Sykkel per måned og kommune",
        "en": "Cycling per month and kommune",
    },
    "index": {
        "nb": "Sykkelindeks med konfidensintervall",
        "en": "Cycling index with confidence interval",
    },
    "index_points": {
        "nb": "Sykkelindeks per tellepunkt",
        "en": "Cycling index per counting point",
    },
    "transit": {
        "nb": "Kollektivtrafikk per kommune og transportform",
        "en": "Public transport per kommune and mode",
    },
    "transit_flows": {
        "nb": "Kollektivturer inn i og ut av regionen",
        "en": "Public transport trips into and out of the region",
    },
    "outages": {
        "nb": "Avbrudd (tellere og datastrømmer)",
        "en": "Outages (counters and feeds)",
    },
    "data_quality": {
        "nb": "Datakvalitet",
        "en": "Data quality",
    },
    "plots": {
        "nb": "Figurer",
        "en": "Figures",
    },
    "attributions": {
        "nb": "Kilder og lisenser",
        "en": "Sources and licences",
    },
    "sheet_cycling_monthly": {
        "nb": "Sykkel per måned",
        "en": "Cycling monthly",
    },
    "sheet_index": {
        "nb": "Indeks",
        "en": "Index",
    },
    "sheet_index_points": {
        "nb": "Indeks per punkt",
        "en": "Index per point",
    },
    "sheet_transit": {
        "nb": "Kollektiv",
        "en": "Transit",
    },
    "sheet_transit_flows": {
        "nb": "Inn og ut",
        "en": "In and out",
    },
    "sheet_outages": {
        "nb": "Avbrudd",
        "en": "Outages",
    },
    "sheet_data_quality": {
        "nb": "Datakvalitet",
        "en": "Data quality",
    },
    "sheet_attributions": {
        "nb": "Kilder",
        "en": "Sources",
    },
    "kommune_nr": {
        "nb": "Kommunenr.",
        "en": "Kommune no.",
    },
    "month": {
        "nb": "Måned",
        "en": "Month",
    },
    "volume": {
        "nb": "Syklende",
        "en": "Cyclists",
    },
    "coverage_pct": {
        "nb": "Dekning %",
        "en": "Coverage %",
    },
    "hours": {
        "nb": "Timer med data",
        "en": "Hours with data",
    },
    "area": {
        "nb": "Område",
        "en": "Area",
    },
    "n_points": {
        "nb": "Punkter",
        "en": "Points",
    },
    "matched_hours": {
        "nb": "Sammenlignbare timer",
        "en": "Matched hours",
    },
    "base": {
        "nb": "Basisår",
        "en": "Base year",
    },
    "current": {
        "nb": "Inneværende år",
        "en": "Current year",
    },
    "index_pct": {
        "nb": "Indeks %",
        "en": "Index %",
    },
    "ci_low": {
        "nb": "KI nedre %",
        "en": "CI low %",
    },
    "ci_high": {
        "nb": "KI øvre %",
        "en": "CI high %",
    },
    "point_id": {
        "nb": "Punkt",
        "en": "Point",
    },
    "name": {
        "nb": "Navn",
        "en": "Name",
    },
    "weight": {
        "nb": "Vekt",
        "en": "Weight",
    },
    "status": {
        "nb": "Status",
        "en": "Status",
    },
    "departures": {
        "nb": "Avganger",
        "en": "Departures",
    },
    "trips": {
        "nb": "Turer (sum per time)",
        "en": "Trips (sum per hour)",
    },
    "trips_into_region": {
        "nb": "Turer inn",
        "en": "Trips in",
    },
    "trips_out_of_region": {
        "nb": "Turer ut",
        "en": "Trips out",
    },
    "cancelled_calls": {
        "nb": "Innstilte anløp",
        "en": "Cancelled calls",
    },
    "punctuality_pct": {
        "nb": "Punktlighet %",
        "en": "Punctuality %",
    },
    "type": {
        "nb": "Type",
        "en": "Type",
    },
    "kind": {
        "nb": "Art",
        "en": "Kind",
    },
    "started": {
        "nb": "Start",
        "en": "Started",
    },
    "ended": {
        "nb": "Slutt",
        "en": "Ended",
    },
    "duration_hours": {
        "nb": "Varighet (timer)",
        "en": "Duration (hours)",
    },
    "details": {
        "nb": "Detaljer",
        "en": "Details",
    },
    "period_hours": {
        "nb": "Timer i perioden",
        "en": "Hours in period",
    },
    "hours_ok": {
        "nb": "Timer ≥ 95 %",
        "en": "Hours ≥ 95 %",
    },
    "licence": {
        "nb": "Lisens",
        "en": "Licence",
    },
    "attribution": {
        "nb": "Kreditering",
        "en": "Attribution",
    },
    "counter": {
        "nb": "teller",
        "en": "counter",
    },
    "feed": {
        "nb": "datastrøm",
        "en": "feed",
    },
    "open": {
        "nb": "pågår",
        "en": "open",
    },
    "region": {
        "nb": "Hele regionen",
        "en": "Whole region",
    },
    "included": {
        "nb": "med",
        "en": "included",
    },
    "few_hours": {
        "nb": "utelatt: for få sammenlignbare timer",
        "en": "excluded: too few matched hours",
    },
    "zero_base": {
        "nb": "utelatt: ingen trafikk i basisåret",
        "en": "excluded: no base-year volume",
    },
    "no_index": {
        "nb": "ikke i indeksen (ingen sammenlignbare timer)",
        "en": "not in the index (no matched hours)",
    },
    "note_cycling_monthly": {
        "nb": (
            "Sum av timeverdier; dekning er gjennomsnittlig timedekning over alle"
            " timer i måneden (timer uten data teller som 0 %)."
        ),
        "en": (
            "Sum of hourly values; coverage is the mean hourly coverage over "
            "every hour of the month (hours without data count as 0 %)."
        ),
    },
    "note_index": {
        "nb": (
            "Statens vegvesens metode: dato for dato og time for time mot samme "
            "periode året før, bare timer med dekning ≥ 95 % begge år; 95 % "
            "konfidensintervall P ± t(0,975; n−1)·SE, ikke vist når n < 2."
        ),
        "en": (
            "Statens vegvesen's method: date for date and hour for hour against "
            "the same period a year earlier, only hours with coverage ≥ 95 % in "
            "both years; 95 % confidence interval P ± t(0.975, n−1)·SE, not shown"
            " when n < 2."
        ),
    },
    "note_transit_flows": {
        "nb": (
            "Kjøretøyturer (ikke passasjerer) mellom en kommune i regionen og en utenfor, "
            "talt ved avgangen fra siste stopp før grensen; tog fra Bane NOR, buss fra "
            "fylkets operatør."
        ),
        "en": (
            "Vehicle trips (not passengers) between a kommune in the region and one outside, "
            "counted at the departure from the last stop before the boundary; trains from Bane "
            "NOR, buses from the county's operator."
        ),
    },
    "note_transit": {
        "nb": (
            "Avganger er betjente anløp. Punktlighet: andel anløp med forsinkelse"
            " i [−60 s, +180 s) av anløp med kjent forsinkelse. Dekning: andel "
            "rutede anløp sanntidsstrømmen rapporterte."
        ),
        "en": (
            "Departures are served calls. Punctuality: share of calls with delay "
            "in [−60 s, +180 s) among calls with a known delay. Coverage: share "
            "of scheduled calls the real-time feed reported on."
        ),
    },
    "note_outages": {
        "nb": (
            "Avbrudd som overlapper perioden. Varighet for pågående avbrudd "
            "regnes til rapporttidspunktet."
        ),
        "en": (
            "Outages overlapping the period. The duration of an open outage runs "
            "to the report's time."
        ),
    },
    "note_data_quality": {
        "nb": (
            "Tellepunkter i regionen: timer med data, gjennomsnittlig dekning "
            "over periodens timer, timer med dekning ≥ 95 %, og om punktet er med"
            " i indeksen (og hvorfor ikke)."
        ),
        "en": (
            "Counting points in the region: hours with data, mean coverage over "
            "the period's hours, hours with coverage ≥ 95 %, and whether the "
            "point is in the index (and why not)."
        ),
    },
    "no_rows": {
        "nb": "Ingen data i perioden.",
        "en": "No data in the period.",
    },
    "min_hours_note": {
        "nb": "Et punkt må ha minst {n} sammenlignbare timer for å være med.",
        "en": "A point needs at least {n} matched hours to take part.",
    },
    "kommuner_without_points": {
        "nb": "Kommuner uten tellepunkter: {names}.",
        "en": "Kommuner without counting points: {names}.",
    },
    "plot_monthly": {
        "nb": "Syklende per måned",
        "en": "Cyclists per month",
    },
    "plot_index": {
        "nb": "Sykkelindeks med 95 % KI",
        "en": "Cycling index with 95 % CI",
    },
    "plot_profile": {
        "nb": "Døgnprofil: hverdag og helg",
        "en": "Hour-of-day profile: weekday and weekend",
    },
    "weekday": {
        "nb": "hverdag",
        "en": "weekday",
    },
    "weekend": {
        "nb": "helg",
        "en": "weekend",
    },
    "hour_of_day": {
        "nb": "Time (norsk tid)",
        "en": "Hour (Norwegian time)",
    },
    "mean_per_hour": {
        "nb": "Syklende per time (snitt, regionen)",
        "en": "Cyclists per hour (mean, region)",
    },
}
"""Message key → language → text."""


def t(key: str, lang: Lang) -> str:
    """The text of ``key`` in ``lang``."""
    return MESSAGES[key][lang]


def labels(lang: Lang) -> dict[str, str]:
    """Every message in ``lang`` (the live page gets them as its labels)."""
    return {key: texts[lang] for key, texts in MESSAGES.items()}


def mode_name(mode: str, lang: Lang) -> str:
    """A mode as a reader says it (``bus`` → "buss"); an unknown code stays as it is."""
    texts = MESSAGES.get(f"mode_{mode}")
    return texts[lang] if texts else mode


def metric_name(metric: str, lang: Lang) -> str:
    """A metric as a reader says it (``departures`` → "avganger"); unknown: the code."""
    texts = MESSAGES.get(f"metric_{metric}")
    return texts[lang] if texts else metric


def month_name(month: int, lang: Lang) -> str:
    """``oktober`` / ``October`` (CLDR's stand-alone wide month name)."""
    return str(get_month_names("wide", context="stand-alone", locale=_LOCALE[lang])[month])


def format_number(value: float, lang: Lang, decimals: int = 0) -> str:
    """``12 345,7`` in bokmål, ``12,345.7`` in English (CLDR grouping and decimal sign)."""
    pattern = "#,##0" + ("." + "0" * decimals if decimals > 0 else "")
    return str(format_decimal(value, format=pattern, locale=_LOCALE[lang]))


def format_date(day: date | datetime, lang: Lang) -> str:
    """``26.10.2025`` in bokmål, ``2025-10-26`` in English; with ``HH:MM`` for a datetime.

    A datetime is shown as Europe/Oslo wall-clock time.
    """
    if isinstance(day, datetime):
        local = day.astimezone(OSLO) if day.tzinfo is not None else day
        return f"{format_date(local.date(), lang)} {local:%H:%M}"
    return day.strftime("%d.%m.%Y") if lang == "nb" else day.isoformat()


def local_time(value: datetime) -> str:
    """``2025-10-26 02:00 +01:00``: Europe/Oslo with its offset (the repeated hour differs)."""
    local = value.astimezone(OSLO)
    return f"{local:%Y-%m-%d %H:%M} {_offset(local)}"


def hour_label(start: datetime) -> str:
    """``26.10. 02:00–03:00 (+01:00)``: a UTC hour as Europe/Oslo wall clock."""
    local = start.astimezone(OSLO)
    end = (start + timedelta(hours=1)).astimezone(OSLO)
    return f"{local:%d.%m.} {local:%H:%M}–{end:%H:%M} ({_offset(local)})"


def _offset(local: datetime) -> str:
    text = local.strftime("%z")
    return f"{text[:3]}:{text[3:]}"
