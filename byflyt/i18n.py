"""byflyt's words in Norwegian bokmål (the default) and English: one catalogue, one set of formats.

The live page and the indicator report both read :data:`MESSAGES`, the catalogue kept as data in
``messages.toml`` beside this module; modes and metrics have their names there (``mode_bus`` →
"buss"/"bus", ``metric_departures`` → "avganger"/"departures"), so no raw code reaches a reader.
Numbers, dates and month names follow Babel's CLDR locales (``nb``: decimal comma,
no-break-space thousands, "oktober"); times shown to people are Europe/Oslo.
"""

from __future__ import annotations

import tomllib
from datetime import date, datetime, timedelta
from importlib import resources
from typing import Literal

from babel.dates import get_month_names
from babel.numbers import format_decimal

from byflyt.clock import OSLO

Lang = Literal["nb", "en"]
LANGS: tuple[Lang, ...] = ("nb", "en")
_LOCALE: dict[Lang, str] = {"nb": "nb_NO", "en": "en_GB"}

CATALOGUE = "messages.toml"
"""The catalogue's file beside this module: a TOML table per message key, ``nb`` and ``en``."""


def read_catalogue(text: str) -> dict[str, dict[Lang, str]]:
    """The catalogue in ``text``; a key without exactly a bokmål and an English text is refused."""
    messages: dict[str, dict[Lang, str]] = {}
    for key, texts in tomllib.loads(text).items():
        if not isinstance(texts, dict) or sorted(texts) != sorted(LANGS):
            raise ValueError(f"{CATALOGUE}: [{key}] needs exactly the keys {' and '.join(LANGS)}")
        if not all(isinstance(value, str) for value in texts.values()):
            raise ValueError(f"{CATALOGUE}: [{key}] has a text that is not a string")
        messages[key] = {lang: texts[lang] for lang in LANGS}
    return messages


MESSAGES: dict[str, dict[Lang, str]] = read_catalogue(
    resources.files("byflyt").joinpath(CATALOGUE).read_text("utf-8")
)
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
