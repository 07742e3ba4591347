"""Kommune history: every number and name since 2017, and what each became.

The table (``data/kommune_history.csv``) comes from Statistics Norway's classification of
kommuner (KLASS 131) and its change lists: one row per number and name with its validity and
the numbers that took over when it ended. Planners' region lists were written before the 2020
mergers and the 2024 splits; :meth:`KommuneHistory.resolve` turns a name or number as it was on
a date into today's kommune(s), saying what happened on the way.

A split sends a kommune to all of its parts, except where a part re-established an earlier
kommune whole (``restores``; 1580 Haram in 2024 is the whole of 1534 Haram as it was in 2019):
land that came from that kommune goes to that part only, land that came from the others to the
remaining parts. So 1504 Ålesund (2019) is today's 1508 Ålesund, 1534 Haram is 1580 Haram, and
1507 Ålesund (2020–2023) is both.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache, cached_property
from importlib import resources

from byflyt.clock import OSLO

_NUMBER = re.compile(r"^\d{3,4}$")
_NUMBER_AND_NAME = re.compile(r"^(\d{3,4})\s+(\S.*)$")
_QUALIFIER = re.compile(r"\s*\(([^)]*)\)\s*$")


def today() -> date:
    """Today's date in Norway (a kommune change takes effect at midnight, Norwegian time)."""
    return datetime.now(OSLO).date()


def _fold(text: str) -> str:
    folded = " ".join(text.split()).casefold()
    return folded.removesuffix(" kommune")


def name_keys(name: str) -> frozenset[str]:
    """Every way a query may spell ``name``.

    ``Herøy (Nordland)``: itself and ``Herøy``; ``Nordreisa - Ráisa - Raisi``: itself and each
    of its parallel names; all case-folded.
    """
    keys = {_fold(name)}
    qualifier = _QUALIFIER.search(name)
    base = name[: qualifier.start()] if qualifier else name
    keys.add(_fold(base))
    for part in base.split(" - "):
        keys.add(_fold(part))
        if qualifier:
            keys.add(_fold(f"{part} ({qualifier.group(1)})"))
    return frozenset(keys)


@dataclass(frozen=True)
class Kommune:
    """A kommune number with one name over one span of days (``valid_to`` None: valid today)."""

    number: str
    name: str
    valid_from: date
    valid_to: date | None
    successors: tuple[str, ...] = ()
    restores: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``1504 Ålesund``."""
        return f"{self.number} {self.name}"

    @property
    def current(self) -> bool:
        """Whether it is still valid."""
        return self.valid_to is None

    def valid_on(self, day: date) -> bool:
        """Whether the number had this name on ``day``."""
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)

    def span(self) -> str:
        """``2017-01-01–2019-12-31`` or ``since 2020-01-01``."""
        if self.valid_to is None:
            return f"since {self.valid_from}"
        return f"{self.valid_from}–{self.valid_to}"


@dataclass(frozen=True)
class Resolution:
    """One of today's kommuner that an old name or number resolves to."""

    query: str
    named: Kommune
    kommune: Kommune
    change: str
    split: bool

    @property
    def unchanged(self) -> bool:
        """The query named today's kommune itself."""
        return self.named == self.kommune


class UnknownKommune(LookupError):
    """No kommune had that name or number (on that date); the message says what did."""


class AmbiguousKommune(LookupError):
    """Several kommuner had that name on that date; ``candidates`` lists them."""

    def __init__(self, message: str, candidates: tuple[Kommune, ...]) -> None:
        super().__init__(message)
        self.candidates = candidates


class KommuneHistory:
    """The kommune history table, indexed by number and by name."""

    def __init__(self, rows: Iterable[Kommune]) -> None:
        self.rows = tuple(sorted(rows, key=lambda k: (k.number, k.valid_from)))
        self._by_number: dict[str, list[Kommune]] = defaultdict(list)
        self._by_name: dict[str, list[Kommune]] = defaultdict(list)
        self._predecessors: dict[Kommune, list[Kommune]] = defaultdict(list)
        for row in self.rows:
            self._by_number[row.number].append(row)
            for key in name_keys(row.name):
                self._by_name[key].append(row)
        for row in self.rows:
            for successor in self.successors(row):
                self._predecessors[successor].append(row)

    # -- looking up ------------------------------------------------------------------------
    def on(self, day: date) -> list[Kommune]:
        """The kommuner valid on ``day``."""
        return [row for row in self.rows if row.valid_on(day)]

    @cached_property
    def current(self) -> tuple[Kommune, ...]:
        """Today's kommuner."""
        return tuple(row for row in self.rows if row.current)

    def at(self, number: str, day: date) -> Kommune | None:
        """The row of ``number`` valid on ``day``."""
        return next((r for r in self._by_number.get(number, ()) if r.valid_on(day)), None)

    def successors(self, row: Kommune) -> list[Kommune]:
        """The rows that took over from ``row`` the day after it ended."""
        if row.valid_to is None:
            return []
        day = row.valid_to + timedelta(days=1)
        found = [self.at(number, day) for number in row.successors]
        missing = [n for n, r in zip(row.successors, found, strict=True) if r is None]
        if missing:
            raise ValueError(f"{row.label}: successor {missing} is not valid on {day}")
        return [r for r in found if r is not None]

    def predecessors(self, row: Kommune) -> list[Kommune]:
        """The rows that ended the day before ``row`` began and named it a successor."""
        return list(self._predecessors.get(row, ()))

    def find(self, text: str, day: date | None = None) -> list[Kommune]:
        """The kommuner ``text`` (a number, a name, or ``number name``) named on ``day``.

        Without ``day``: today's, else the latest that had that number or name. Several
        rows are returned when a name was shared (two Herøy); none raises
        :class:`UnknownKommune` with what the number or name was on other dates.
        """
        query = " ".join(text.split())
        both = _NUMBER_AND_NAME.match(query)
        if both:
            return [self._number_and_name(both.group(1).zfill(4), both.group(2), day, query)]
        if _NUMBER.match(query):
            rows = self._by_number.get(query.zfill(4), [])
        else:
            rows = self._by_name.get(_fold(query), [])
        chosen = _on_day(rows, day)
        if day is None:
            # "Snillfjord" was 1613 and then 5012: the latest of one kommune's numbers stands.
            chosen = [r for r in chosen if not any(self._reaches(r, o) for o in chosen if o != r)]
        if not chosen:
            raise UnknownKommune(_unknown(query, rows, day))
        return chosen

    def _reaches(self, row: Kommune, other: Kommune) -> bool:
        """Whether ``other`` is among the rows that followed ``row``."""
        frontier = self.successors(row)
        while frontier:
            if other in frontier:
                return True
            frontier = [s for f in frontier for s in self.successors(f)]
        return False

    def _number_and_name(self, number: str, name: str, day: date | None, query: str) -> Kommune:
        rows = _on_day(self._by_number.get(number, []), day)
        if not rows:
            raise UnknownKommune(_unknown(query, self._by_number.get(number, []), day))
        row = rows[0]
        if _fold(name) not in name_keys(row.name):
            when = f"on {day}" if day else row.span()
            raise UnknownKommune(f"{number} was {row.name} {when}, not {name!r}")
        return row

    # -- resolving -------------------------------------------------------------------------
    def resolve(self, text: str, day: date | None = None) -> list[Resolution]:
        """Today's kommune(s) for each kommune ``text`` named on ``day`` (see :meth:`find`)."""
        results: list[Resolution] = []
        for named in self.find(text, day):
            ends = self._follow(named, frozenset(), entered_by_merger=False, steps=())
            for kommune, steps in ends:
                results.append(
                    Resolution(
                        query=text,
                        named=named,
                        kommune=kommune,
                        change="; ".join(steps) if steps else "unchanged",
                        split=len(ends) > 1,
                    )
                )
        return results

    def resolve_one(self, text: str, day: date | None = None) -> list[Resolution]:
        """Like :meth:`resolve`, but a name shared by several kommuner is an error."""
        named = self.find(text, day)
        if len({row.number for row in named}) > 1:
            when = f"on {day}" if day else "today"
            listed = ", ".join(row.label for row in named)
            raise AmbiguousKommune(
                f"{text!r} named {len(named)} kommuner {when}: {listed}", tuple(named)
            )
        return self.resolve(text, day)

    def _follow(
        self,
        row: Kommune,
        lineage: frozenset[str],
        *,
        entered_by_merger: bool,
        steps: tuple[str, ...],
    ) -> list[tuple[Kommune, tuple[str, ...]]]:
        if row.current:
            return [(row, steps)]
        parts = self.successors(row)
        year = parts[0].valid_from.year
        lineage = lineage | {row.number}
        if len(parts) > 1:
            restoring = [p for p in parts if set(p.restores) & lineage]
            if restoring:
                chosen = restoring
                step = f"{row.label} split ({year}): re-established as " + _labels(chosen)
            elif entered_by_merger and any(p.restores for p in parts):
                chosen = [p for p in parts if not p.restores]
                step = f"{row.label} split ({year}): this part is now " + _labels(chosen)
            else:
                chosen = parts
                step = f"split into {_labels(parts)} ({year})"
            return [
                end
                for part in chosen
                for end in self._follow(
                    part, lineage, entered_by_merger=False, steps=(*steps, step)
                )
            ]
        (successor,) = parts
        merged = len(self.predecessors(successor)) > 1
        if merged:
            step = f"merged into {successor.label} ({year})"
        elif successor.number != row.number:
            step = f"renumbered {successor.label} ({year})"
        else:
            step = f"renamed {successor.name} ({year})"
        return self._follow(successor, lineage, entered_by_merger=merged, steps=(*steps, step))


@cache
def kommune_history() -> KommuneHistory:
    """The table shipped with byflyt (SSB KLASS 131, 2017 onwards)."""
    text = resources.files("byflyt.models").joinpath("data/kommune_history.csv").read_text("utf-8")
    lines = (line for line in text.splitlines() if not line.startswith("#"))
    return KommuneHistory(
        Kommune(
            number=row["kommune_nr"],
            name=row["name"],
            valid_from=date.fromisoformat(row["valid_from"]),
            valid_to=date.fromisoformat(row["valid_to"]) if row["valid_to"] else None,
            successors=tuple(row["successors"].split()),
            restores=tuple(row["restores"].split()),
        )
        for row in csv.DictReader(lines)
    )


def _labels(rows: Iterable[Kommune]) -> str:
    return ", ".join(row.label for row in rows)


def _on_day(rows: list[Kommune], day: date | None) -> list[Kommune]:
    if day is not None:
        return [row for row in rows if row.valid_on(day)]
    current = [row for row in rows if row.current]
    if current:
        return current
    latest: dict[str, Kommune] = {}
    for row in rows:
        if row.number not in latest or row.valid_from > latest[row.number].valid_from:
            latest[row.number] = row
    return sorted(latest.values(), key=lambda r: r.number)


def _unknown(query: str, rows: list[Kommune], day: date | None) -> str:
    if not rows:
        return f"no kommune had the number or name {query!r} since 2017"
    spans = "; ".join(f"{row.label} {row.span()}" for row in rows)
    return f"{query!r} named no kommune on {day} ({spans})"
