"""Train numbers: Bane NOR's SIRI journey refs resolved to the static trips of their day.

Bane NOR (Entur dataset ``BNR``) publishes every passenger train in Norway, but names a
journey by its train number and date, ``DatedVehicleJourneyRef`` ``3520:2018-08-28`` (bare, or in
a ``FramedVehicleJourneyRef`` whose ``DataFrameRef`` is the date), not by the ServiceJourney id
the static feed uses (``VYG:ServiceJourney:…``, ``SJN:ServiceJourney:…``). A train number is a
NeTEx ServiceJourney's ``PrivateCode``; Entur's national GTFS writes it as the rail trip's
``trip_short_name``. One train number names different trips on different dates (a weekday and a
Saturday timetable), so a ref resolves through the day: the rail trips with that number whose
service runs on the ref's date. Several on one date (a train split into two ServiceJourneys) are
all returned; the connector keeps the one whose stops the journey's calls name most.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date

import pandas as pd

from byflyt.models.gtfs import StaticFeed

#: ``3520:2018-08-28`` (train number and date) or a bare train number ``3520``.
TRAIN_REF = re.compile(r"^\s*(?P<number>\d{1,6})(?::(?P<date>\d{4}-\d{2}-\d{2}))?\s*$")
_TRAIN_NUMBER = re.compile(r"(?:^|\s)(\d{1,6})\s*$")


@dataclass(frozen=True)
class TrainRef:
    """A journey named by train number; ``service_date`` None when the ref carries no date."""

    number: str
    service_date: date | None


class TrainNotResolved(Exception):
    """A train ref that names no static trip of its day; ``rule`` is the reason code."""

    def __init__(self, rule: str, reason: str) -> None:
        self.rule = rule
        self.reason = reason
        super().__init__(reason)


def _number(text: str) -> str:
    """A train number as compared: digits without leading zeros (``0041`` is train 41)."""
    return text.lstrip("0") or "0"


def parse_train_ref(ref: str | None) -> TrainRef | None:
    """The train number and date of a Bane NOR journey ref; None when ``ref`` is not one."""
    match = TRAIN_REF.match(ref or "")
    if match is None:
        return None
    when = match["date"]
    try:
        day = date.fromisoformat(when) if when else None
    except ValueError:
        return None
    return TrainRef(_number(match["number"]), day)


def train_number_of(short_name: object) -> str | None:
    """The train number a ``trip_short_name`` carries (``2151``, ``RE10 2151``), else None."""
    if not isinstance(short_name, str):
        return None
    match = _TRAIN_NUMBER.search(short_name)
    return _number(match[1]) if match else None


class TrainIndex:
    """Train number → the static feed's rail trips that carry it (``trip_short_name``)."""

    def __init__(self, static: StaticFeed) -> None:
        self.static = static
        rail_routes = set(static.routes.loc[static.routes["mode"] == "rail", "route_id"])
        trips = static.trips[static.trips["route_id"].isin(rail_routes)]
        by_number: dict[str, list[str]] = defaultdict(list)
        for trip_id, short_name in zip(trips["trip_id"], trips["trip_short_name"], strict=True):
            number = train_number_of(None if pd.isna(short_name) else short_name)
            if number is not None:
                by_number[number].append(str(trip_id))
        self._trips = {k: tuple(sorted(v)) for k, v in by_number.items()}
        self._service = dict(zip(trips["trip_id"], trips["service_id"], strict=True))

    def __len__(self) -> int:
        """How many train numbers the feed knows."""
        return len(self._trips)

    def trips(self, number: str) -> tuple[str, ...]:
        """Every rail trip with train number ``number``, whatever its dates."""
        return self._trips.get(_number(number), ())

    def resolve(self, number: str, service_date: date) -> tuple[str, ...]:
        """The rail trips of train ``number`` that run on ``service_date`` (sorted by id).

        Raises :class:`TrainNotResolved`: ``unknown_train`` when no rail trip of the feed has
        the number, ``train_not_running`` when none of them runs that day.
        """
        candidates = self.trips(number)
        feed = self.static.feed
        if not candidates:
            why = "no rail trip has it as trip_short_name" if self else "it has no train numbers"
            raise TrainNotResolved(
                "unknown_train", f"train {number} is not in static feed {feed!r} ({why})"
            )
        running = tuple(
            t for t in candidates if service_date in self.static.service_dates(self._service[t])
        )
        if not running:
            dates = sorted(
                {d for t in candidates for d in self.static.service_dates(self._service[t])}
            )
            near = ", ".join(str(d) for d in dates[:5]) + (" …" if len(dates) > 5 else "")
            raise TrainNotResolved(
                "train_not_running",
                f"train {number} runs on no trip of static feed {feed!r} on {service_date} "
                f"(it runs on {near or 'no date'})",
            )
        return running
