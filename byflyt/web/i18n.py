"""The live page's labels in Norwegian (bokmål) and English, and its Europe/Oslo time labels."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Lang = Literal["nb", "en"]
OSLO = ZoneInfo("Europe/Oslo")

LABELS: dict[str, dict[str, str]] = {
    "title": {"nb": "byflyt – direkte", "en": "byflyt – live"},
    "all_kommuner": {"nb": "Alle kommuner", "en": "All kommuner"},
    "synthetic": {
        "nb": "Syntetiske data: tallene er laget for demonstrasjon, ikke målt.",
        "en": "Synthetic data: these numbers are made up for demonstration, not measured.",
    },
    "updated": {"nb": "Oppdatert", "en": "Updated"},
    "stale_page": {
        "nb": "Får ikke kontakt med serveren; viser siste kjente tall.",
        "en": "Cannot reach the server; showing the last known numbers.",
    },
    "volumes": {"nb": "Volum per time", "en": "Hourly volumes"},
    "kommune": {"nb": "Kommune", "en": "Kommune"},
    "mode": {"nb": "Reisemåte", "en": "Mode"},
    "metric": {"nb": "Mål", "en": "Metric"},
    "current_hour": {"nb": "Siste time", "en": "Latest hour"},
    "previous_hour": {"nb": "Timen før", "en": "Hour before"},
    "coverage": {"nb": "dekning", "en": "coverage"},
    "no_data": {"nb": "Ingen data ennå.", "en": "No data yet."},
    "sensors": {"nb": "Tellere og strømmer", "en": "Counters and feeds"},
    "sensor": {"nb": "Teller / strøm", "en": "Counter / feed"},
    "state": {"nb": "Tilstand", "en": "State"},
    "since": {"nb": "Siden", "en": "Since"},
    "freshness": {"nb": "Ferskhet", "en": "Freshness"},
    "source": {"nb": "Kilde", "en": "Source"},
    "newest": {"nb": "Nyeste time", "en": "Newest hour"},
    "age": {"nb": "Alder", "en": "Age"},
    "count": {"nb": "Antall", "en": "Count"},
    "topics": {"nb": "Kafka-emner", "en": "Kafka topics"},
    "topics_connected": {"nb": "tilkoblet", "en": "connected"},
    "topics_disconnected": {"nb": "ikke tilkoblet", "en": "not connected"},
    "topics_off": {"nb": "ikke fulgt", "en": "not followed"},
    "times_note": {
        "nb": "Tider i norsk tid (Europe/Oslo).",
        "en": "Times in Norwegian time (Europe/Oslo).",
    },
    "hours_short": {"nb": "t", "en": "h"},
    "minutes_short": {"nb": "min", "en": "min"},
    "state_up": {"nb": "i drift", "en": "up"},
    "state_silent": {"nb": "taus", "en": "silent"},
    "state_flat": {"nb": "flat", "en": "flat"},
    "state_low_coverage": {"nb": "lav dekning", "en": "low coverage"},
    "state_stale": {"nb": "foreldet", "en": "stale"},
    "state_empty": {"nb": "tom", "en": "empty"},
    "mode_bicycle": {"nb": "sykkel", "en": "bicycle"},
    "mode_pedestrian": {"nb": "gange", "en": "walking"},
    "mode_bus": {"nb": "buss", "en": "bus"},
    "mode_rail": {"nb": "tog", "en": "rail"},
    "mode_coach": {"nb": "ekspressbuss", "en": "coach"},
    "mode_tram": {"nb": "trikk", "en": "tram"},
    "mode_metro": {"nb": "T-bane", "en": "metro"},
    "mode_ferry": {"nb": "ferje/båt", "en": "ferry"},
    "metric_volume": {"nb": "passeringer", "en": "passages"},
    "metric_departures": {"nb": "avganger", "en": "departures"},
    "other_lang": {"nb": "English", "en": "Norsk"},
    "attribution": {
        "nb": "Data: Statens vegvesen Trafikkdata og Entur (NLOD).",
        "en": "Data: Statens vegvesen Trafikkdata and Entur (NLOD).",
    },
}
"""Label key → language → text. The page gets one language's labels as JSON."""


def labels(lang: Lang) -> dict[str, str]:
    """Every label in ``lang``."""
    return {key: texts[lang] for key, texts in LABELS.items()}


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
