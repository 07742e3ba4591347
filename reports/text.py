"""The report's words in Norwegian bokmål (the default) and English."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

Lang = Literal["nb", "en"]

MONTHS = {
    "nb": (
        "januar",
        "februar",
        "mars",
        "april",
        "mai",
        "juni",
        "juli",
        "august",
        "september",
        "oktober",
        "november",
        "desember",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}

TEXT: dict[str, dict[str, str]] = {
    "title": {"nb": "Byflyt-rapport", "en": "byflyt report"},
    "synthetic": {
        "nb": "SYNTETISKE DATA / SYNTHETIC DATA",
        "en": "SYNTHETIC DATA / SYNTETISKE DATA",
    },
    "synthetic_note": {
        "nb": "Tallene i denne rapporten er laget av byflyts eksempeldata, ikke målt.",
        "en": "The numbers in this report come from byflyt's made-up sample data, not "
        "measurements.",
    },
    "generated": {"nb": "Laget", "en": "Generated"},
    "period": {"nb": "Periode", "en": "Period"},
    "base_period": {"nb": "sammenlignet med", "en": "compared with"},
    "dates_note": {
        "nb": "Datoer og klokkeslett er norsk tid (Europe/Oslo).",
        "en": "Dates and times are Norwegian time (Europe/Oslo).",
    },
    # sections
    "cycling_monthly": {"nb": "Sykkel per måned og kommune", "en": "Cycling per month and kommune"},
    "index": {
        "nb": "Sykkelindeks med konfidensintervall",
        "en": "Cycling index with confidence interval",
    },
    "index_points": {"nb": "Sykkelindeks per tellepunkt", "en": "Cycling index per counting point"},
    "transit": {
        "nb": "Kollektivtrafikk per kommune og transportform",
        "en": "Public transport per kommune and mode",
    },
    "outages": {"nb": "Avbrudd (tellere og datastrømmer)", "en": "Outages (counters and feeds)"},
    "data_quality": {"nb": "Datakvalitet", "en": "Data quality"},
    "plots": {"nb": "Figurer", "en": "Figures"},
    "attributions": {"nb": "Kilder og lisenser", "en": "Sources and licences"},
    # sheet names (at most 31 characters)
    "sheet_cycling_monthly": {"nb": "Sykkel per måned", "en": "Cycling monthly"},
    "sheet_index": {"nb": "Indeks", "en": "Index"},
    "sheet_index_points": {"nb": "Indeks per punkt", "en": "Index per point"},
    "sheet_transit": {"nb": "Kollektiv", "en": "Transit"},
    "sheet_outages": {"nb": "Avbrudd", "en": "Outages"},
    "sheet_data_quality": {"nb": "Datakvalitet", "en": "Data quality"},
    "sheet_attributions": {"nb": "Kilder", "en": "Sources"},
    # columns
    "kommune_nr": {"nb": "Kommunenr.", "en": "Kommune no."},
    "kommune": {"nb": "Kommune", "en": "Kommune"},
    "month": {"nb": "Måned", "en": "Month"},
    "volume": {"nb": "Syklende", "en": "Cyclists"},
    "coverage_pct": {"nb": "Dekning %", "en": "Coverage %"},
    "hours": {"nb": "Timer med data", "en": "Hours with data"},
    "area": {"nb": "Område", "en": "Area"},
    "n_points": {"nb": "Punkter", "en": "Points"},
    "matched_hours": {"nb": "Sammenlignbare timer", "en": "Matched hours"},
    "base": {"nb": "Basisår", "en": "Base year"},
    "current": {"nb": "Inneværende år", "en": "Current year"},
    "index_pct": {"nb": "Indeks %", "en": "Index %"},
    "ci_low": {"nb": "KI nedre %", "en": "CI low %"},
    "ci_high": {"nb": "KI øvre %", "en": "CI high %"},
    "source": {"nb": "Kilde", "en": "Source"},
    "point_id": {"nb": "Punkt", "en": "Point"},
    "name": {"nb": "Navn", "en": "Name"},
    "weight": {"nb": "Vekt", "en": "Weight"},
    "status": {"nb": "Status", "en": "Status"},
    "mode": {"nb": "Transportform", "en": "Mode"},
    "departures": {"nb": "Avganger", "en": "Departures"},
    "trips": {"nb": "Turer (sum per time)", "en": "Trips (sum per hour)"},
    "cancelled_calls": {"nb": "Innstilte anløp", "en": "Cancelled calls"},
    "punctuality_pct": {"nb": "Punktlighet %", "en": "Punctuality %"},
    "type": {"nb": "Type", "en": "Type"},
    "kind": {"nb": "Art", "en": "Kind"},
    "started": {"nb": "Start", "en": "Started"},
    "ended": {"nb": "Slutt", "en": "Ended"},
    "duration_hours": {"nb": "Varighet (timer)", "en": "Duration (hours)"},
    "details": {"nb": "Detaljer", "en": "Details"},
    "period_hours": {"nb": "Timer i perioden", "en": "Hours in period"},
    "hours_ok": {"nb": "Timer ≥ 95 %", "en": "Hours ≥ 95 %"},
    "licence": {"nb": "Lisens", "en": "Licence"},
    "attribution": {"nb": "Kreditering", "en": "Attribution"},
    # values
    "counter": {"nb": "teller", "en": "counter"},
    "feed": {"nb": "datastrøm", "en": "feed"},
    "open": {"nb": "pågår", "en": "open"},
    "region": {"nb": "Hele regionen", "en": "Whole region"},
    "included": {"nb": "med", "en": "included"},
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
    # notes
    "note_cycling_monthly": {
        "nb": "Sum av timeverdier; dekning er gjennomsnittlig timedekning over alle timer i "
        "måneden "
        "(timer uten data teller som 0 %).",
        "en": "Sum of hourly values; coverage is the mean hourly coverage over every hour of the "
        "month (hours without data count as 0 %).",
    },
    "note_index": {
        "nb": "Statens vegvesens metode: dato for dato og time for time mot samme periode året "
        "før, "
        "bare timer med dekning ≥ 95 % begge år; 95 % konfidensintervall P ± t(0,975; n−1)·SE, "
        "ikke vist når n < 2.",
        "en": "Statens vegvesen's method: date for date and hour for hour against the same period "
        "a "
        "year earlier, only hours with coverage ≥ 95 % in both years; 95 % confidence interval "
        "P ± t(0.975, n−1)·SE, not shown when n < 2.",
    },
    "note_transit": {
        "nb": "Avganger er betjente anløp. Punktlighet: andel anløp med forsinkelse i [−60 s, "
        "+180 s) "
        "av anløp med kjent forsinkelse. Dekning: andel rutede anløp sanntidsstrømmen rapporterte.",
        "en": "Departures are served calls. Punctuality: share of calls with delay in [−60 s, "
        "+180 s) "
        "among calls with a known delay. Coverage: share of scheduled calls the real-time feed "
        "reported on.",
    },
    "note_outages": {
        "nb": "Avbrudd som overlapper perioden. Varighet for pågående avbrudd regnes til "
        "rapporttidspunktet.",
        "en": "Outages overlapping the period. The duration of an open outage runs to the "
        "report's time.",
    },
    "note_data_quality": {
        "nb": "Tellepunkter i regionen: timer med data, gjennomsnittlig dekning over periodens "
        "timer, "
        "timer med dekning ≥ 95 %, og om punktet er med i indeksen (og hvorfor ikke).",
        "en": "Counting points in the region: hours with data, mean coverage over the period's "
        "hours, "
        "hours with coverage ≥ 95 %, and whether the point is in the index (and why not).",
    },
    "no_rows": {"nb": "Ingen data i perioden.", "en": "No data in the period."},
    "min_hours_note": {
        "nb": "Et punkt må ha minst {n} sammenlignbare timer for å være med.",
        "en": "A point needs at least {n} matched hours to take part.",
    },
    "kommuner_without_points": {
        "nb": "Kommuner uten tellepunkter: {names}.",
        "en": "Kommuner without counting points: {names}.",
    },
    # plots
    "plot_monthly": {"nb": "Syklende per måned", "en": "Cyclists per month"},
    "plot_index": {"nb": "Sykkelindeks med 95 % KI", "en": "Cycling index with 95 % CI"},
    "plot_profile": {
        "nb": "Døgnprofil: hverdag og helg",
        "en": "Hour-of-day profile: weekday and weekend",
    },
    "weekday": {"nb": "hverdag", "en": "weekday"},
    "weekend": {"nb": "helg", "en": "weekend"},
    "hour_of_day": {"nb": "Time (norsk tid)", "en": "Hour (Norwegian time)"},
    "mean_per_hour": {
        "nb": "Syklende per time (snitt, regionen)",
        "en": "Cyclists per hour (mean, region)",
    },
}
"""Key → language → text."""


def t(key: str, lang: Lang) -> str:
    """The text of ``key`` in ``lang``."""
    return TEXT[key][lang]


def month_name(month: int, lang: Lang) -> str:
    """``oktober`` / ``October``."""
    return MONTHS[lang][month - 1]


def format_number(value: float, lang: Lang, decimals: int = 0) -> str:
    """``12 345,6`` in bokmål (a thin no-break space groups thousands), ``12,345.6`` in English."""
    text = f"{value:,.{decimals}f}"
    if lang == "nb":
        text = text.replace(",", "\u202f").replace(".", ",").replace("-", "−")
    return text


def format_date(day: date | datetime, lang: Lang) -> str:
    """``23.11.2026`` in bokmål, ``2026-11-23`` in English; with ``HH:MM`` for a datetime."""
    if isinstance(day, datetime):
        clock = day.strftime("%H:%M")
        return f"{format_date(day.date(), lang)} {clock}"
    return day.strftime("%d.%m.%Y") if lang == "nb" else day.isoformat()
