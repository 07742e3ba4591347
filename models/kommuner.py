"""Kommuner and regions: a registry read from data files, not written in code.

Kommune names ship as a small derived table (``data/kommuner.csv``, © Kartverket, CC BY 4.0).
Regions come from ``data/regions.json`` plus an optional user file (``BYFLYT_REGIONS_FILE``)
whose entries extend or replace the defaults.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from byflyt.errors import ConfigError

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


def _parse_regions(data: dict[str, object], origin: str) -> dict[str, Region]:
    regions: dict[str, Region] = {}
    known = kommune_names()
    for key, raw in data.items():
        if key.startswith("_"):
            continue
        if not isinstance(raw, dict) or not isinstance(raw.get("kommuner"), list):
            raise ConfigError(
                "BYFLYT_REGIONS_FILE",
                f"region {key!r} in {origin} has no kommuner list",
                'give {"name": ..., "kommuner": ["3403", ...]}',
            )
        kommuner = tuple(normalise_kommune_nr(k) for k in raw["kommuner"])
        unknown = [k for k in kommuner if k not in known]
        if unknown:
            raise ConfigError(
                "BYFLYT_REGIONS_FILE",
                f"region {key!r} in {origin} names unknown kommuner {unknown}",
                "use 2024 kommune numbers",
            )
        counties = raw.get("counties") or sorted({k[:2] for k in kommuner})
        regions[key] = Region(
            key=key,
            name=str(raw.get("name", key)),
            kommuner=kommuner,
            counties=tuple(str(c).zfill(2) for c in counties),
            note=str(raw.get("note", "")),
        )
    return regions


def load_regions(extra_file: Path | None = None) -> dict[str, Region]:
    """The built-in regions, extended or overridden by ``extra_file``."""
    text = resources.files("byflyt.models").joinpath("data/regions.json").read_text("utf-8")
    regions = _parse_regions(json.loads(text), "the built-in regions")
    if extra_file is not None:
        try:
            data = json.loads(extra_file.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(
                "BYFLYT_REGIONS_FILE", f"cannot read {extra_file}: {exc}", "point it at a JSON file"
            ) from exc
        regions.update(_parse_regions(data, str(extra_file)))
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
