"""Kommuner and regions: a registry read from data files, not written in code.

Kommune names ship as a small derived table (``data/kommuner.csv``, © Kartverket, CC BY 4.0).
Regions come from ``data/regions.json`` plus an optional user file (``BYFLYT_REGIONS_FILE``)
whose entries extend or replace the defaults. A region may name its kommuner as they were when
its list was written (``"as_of": "2018-01-01"``); they are resolved to today's through the
kommune history (:mod:`byflyt.models.history`).
"""

from __future__ import annotations

import csv
import json
import logging
import re
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path

from byflyt.errors import ConfigError
from byflyt.models.history import AmbiguousKommune, UnknownKommune, kommune_history

log = logging.getLogger(__name__)

KOMMUNE_NR = re.compile(r"^\d{4}$")


def normalise_kommune_nr(value: object) -> str:
    """A kommune number as the 4-character string it is ("0301"), from an int or a string.

    Trafikkdata sends numbers as JSON integers, so Oslo's 0301 arrives as 301.
    """
    if isinstance(value, bool):
        raise ValueError(f"kommune number {value!r} is not a number")
    if isinstance(value, int):
        if not 101 <= value <= 9999:
            raise ValueError(f"kommune number {value} is outside 0101–9999")
        return f"{value:04d}"
    if isinstance(value, str) and KOMMUNE_NR.match(value.strip()):
        return value.strip()
    raise ValueError(f"kommune number {value!r} is not 4 digits such as '0301'")


@dataclass(frozen=True)
class Region:
    """A named set of kommuner, with the counties to search for their counting points."""

    key: str
    name: str
    kommuner: tuple[str, ...]
    counties: tuple[str, ...]
    note: str = ""
    notes: tuple[str, ...] = ()
    """How kommuner named the old way were resolved (one line each), empty if none were."""

    def __contains__(self, kommune_nr: object) -> bool:
        return kommune_nr in self.kommuner


@cache
def kommune_names() -> dict[str, str]:
    """Kommune number → name (2024 numbering)."""
    text = resources.files("byflyt.models").joinpath("data/kommuner.csv").read_text("utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {row["kommune_nr"]: row["kommune"] for row in rows}


def kommune_name(kommune_nr: str) -> str:
    """The kommune's name, or its number when unknown."""
    return kommune_names().get(kommune_nr, kommune_nr)


BUILT_IN = "built-in regions (byflyt/models/data/regions.json)"
"""How errors name the shipped regions file (the user's file is named by its setting)."""


def _as_of(raw: object, where: str, setting: str) -> date | None:
    """A region's ``as_of``: a date (``2018-01-01``) or a year (``2018``, meaning 1 January)."""
    if raw is None:
        return None
    text = str(raw).strip()
    try:
        if re.fullmatch(r"\d{4}", text):
            return date(int(text), 1, 1)
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            setting, f"{where}: as_of {raw!r} is not a date", 'write "2018-01-01" or 2018'
        ) from None


def _entry_text(entry: object) -> str:
    # Trafikkdata-style integers (301 for Oslo's 0301) are numbers too.
    if isinstance(entry, int) and not isinstance(entry, bool):
        return normalise_kommune_nr(entry)
    if isinstance(entry, str) and entry.strip():
        return entry.strip()
    raise ValueError(f"{entry!r} is neither a kommune number nor a name")


def _resolve_entry(
    entry: object, as_of: date | None, where: str, setting: str
) -> tuple[list[str], str | None]:
    """Today's kommune numbers for one entry of a region's list, and a note if it changed."""
    when = f"on {as_of}" if as_of else "today or earlier"
    try:
        text = _entry_text(entry)
        found = kommune_history().resolve_one(text, as_of)
    except AmbiguousKommune as exc:
        choices = " or ".join(repr(k.number) for k in exc.candidates)
        raise ConfigError(
            setting, f"{where}: {exc}", f"write the number ({choices}) or the county in brackets"
        ) from None
    except (UnknownKommune, ValueError) as exc:
        raise ConfigError(
            setting,
            f"{where}: entry {entry!r} is no kommune known {when}: {exc}",
            "use a kommune number or name valid on the region's as_of date "
            "(check one with `byflyt regions resolve TEXT --at DATE`)",
        ) from None
    numbers = [r.kommune.number for r in found]
    if all(r.unchanged for r in found):
        return numbers, None
    named = found[0].named
    today = ", ".join(f"{r.kommune.number} {kommune_name(r.kommune.number)}" for r in found)
    split = " (split: all of its parts)" if found[0].split else ""
    said = named.label if text == named.label else f"{text} ({named.label})"
    return numbers, f"{said} → {today}{split}: {found[0].change}"


def _parse_regions(data: dict[str, object], origin: str, setting: str) -> dict[str, Region]:
    regions: dict[str, Region] = {}
    for key, raw in data.items():
        if key.startswith("_"):
            continue
        where = f"region {key!r} in {origin}"
        if not isinstance(raw, dict) or not isinstance(raw.get("kommuner"), list):
            raise ConfigError(
                setting,
                f"{where} has no kommuner list",
                'give {"name": ..., "kommuner": ["3403", "Hamar", ...], "as_of": "2018-01-01"}',
            )
        as_of = _as_of(raw.get("as_of"), where, setting)
        kommuner: list[str] = []
        notes: list[str] = []
        for entry in raw["kommuner"]:
            numbers, note = _resolve_entry(entry, as_of, where, setting)
            kommuner.extend(n for n in numbers if n not in kommuner)
            if note:
                notes.append(note)
        counties = raw.get("counties") or sorted({k[:2] for k in kommuner})
        regions[key] = Region(
            key=key,
            name=str(raw.get("name", key)),
            kommuner=tuple(kommuner),
            counties=tuple(str(c).zfill(2) for c in counties),
            note=str(raw.get("note", "")),
            notes=tuple(notes),
        )
        if notes and (origin, key) not in _SAID:
            _SAID.add((origin, key))
            # The user's own file deserves a visible word; the built-ins say so in their note.
            level = logging.INFO if setting == BUILT_IN else logging.WARNING
            log.log(level, "%s names kommuner as they were: %s", where, "; ".join(notes))
    return regions


_SAID: set[tuple[str, str]] = set()


@cache
def _built_in_regions() -> dict[str, Region]:
    text = resources.files("byflyt.models").joinpath("data/regions.json").read_text("utf-8")
    return _parse_regions(json.loads(text), "the built-in regions", BUILT_IN)


def load_regions(extra_file: Path | None = None) -> dict[str, Region]:
    """The built-in regions, extended or overridden by ``extra_file``.

    Kommuner may be named as they were on the region's ``as_of`` date (numbers, names or
    ``"1504 Ålesund"``); each is resolved to today's kommune(s) through the kommune history.
    """
    regions = dict(_built_in_regions())
    if extra_file is not None:
        try:
            data = json.loads(extra_file.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(
                "BYFLYT_REGIONS_FILE", f"cannot read {extra_file}: {exc}", "point it at a JSON file"
            ) from exc
        if not isinstance(data, dict):
            raise ConfigError(
                "BYFLYT_REGIONS_FILE",
                f"{extra_file} is not a JSON object of regions",
                'write {"myregion": {"name": ..., "kommuner": [...]}}',
            )
        regions.update(_parse_regions(data, str(extra_file), "BYFLYT_REGIONS_FILE"))
    return regions


def get_region(key: str, extra_file: Path | None = None) -> Region:
    """One region by key; a :class:`ConfigError` lists the known keys when it is missing."""
    regions = load_regions(extra_file)
    try:
        return regions[key]
    except KeyError:
        raise ConfigError(
            "--region", f"unknown region {key!r}", f"use one of {', '.join(sorted(regions))}"
        ) from None
