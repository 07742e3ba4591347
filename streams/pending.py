"""A counter point's hours waiting to be judged, counted as hour numbers.

The point machines (:mod:`byflyt.streams.sensors`) step through tens of thousands of hours a
batch; inside they count hours as whole hours since the epoch (:func:`hour_number`), which
compare, add and index as plain ints, and make an aware datetime (:func:`hour_at`) only for a
change they report.
"""

from __future__ import annotations

from array import array
from datetime import UTC, datetime
from functools import lru_cache
from typing import Final

from byflyt.clock import OSLO


def hour_number(hour: datetime) -> int:
    """A UTC hour as the machines count hours inside: whole hours since the epoch."""
    return int(hour.timestamp()) // 3600


@lru_cache(maxsize=1 << 16)
def hour_at(number: int) -> datetime:
    """Inverse of :func:`hour_number`, an aware UTC datetime (cached: points share hours)."""
    return datetime.fromtimestamp(number * 3600, UTC)


@lru_cache(maxsize=1 << 16)
def local_hour_of(number: int) -> int:
    """The Europe/Oslo hour of day of an hour number (cached)."""
    return hour_at(number).astimezone(OSLO).hour


CHUNK_HOURS: Final = 1024
ABSENT: Final = -2
"""No record for the hour."""
NULL: Final = -1
"""A record without a volume (missing, not zero)."""
_NO_VOLUMES: Final = array("q", [ABSENT]) * CHUNK_HOURS
_NO_COVERAGES: Final = array("d", [0.0]) * CHUNK_HOURS


class PendingHours:
    """A point's hours recorded and not judged yet: 16 bytes an hour, not a dict entry.

    While a backlog is read nothing is judged (see :mod:`byflyt.streams.status`), so a point
    holds every hour of it here: a year of one point is 140 kB, where a dict of tuples took
    about 1.3 MB. Hours are kept in chunks of :data:`CHUNK_HOURS` consecutive UTC hours
    (volume and coverage arrays), so a sparse point costs a chunk per stretch of data, and a
    chunk is dropped once its last hour is taken.
    """

    __slots__ = ("_chunks",)

    def __init__(self) -> None:
        self._chunks: dict[int, tuple[array[int], array[float]]] = {}

    def put(self, hour: int, volume: int | None, coverage: float) -> None:
        """Record ``hour``'s value, replacing an earlier one."""
        chunk, i = divmod(hour, CHUNK_HOURS)
        arrays = self._chunks.get(chunk)
        if arrays is None:
            arrays = self._chunks[chunk] = (array("q", _NO_VOLUMES), array("d", _NO_COVERAGES))
        arrays[0][i] = NULL if volume is None else volume
        arrays[1][i] = coverage

    def chunk(self, number: int) -> tuple[array[int], array[float]] | None:
        """The volumes and coverages of chunk ``number`` (hours ``number * CHUNK_HOURS`` on).

        For a reader that walks the hours itself: a volume of :data:`ABSENT` is no record,
        :data:`NULL` a record without a volume; it marks an hour it takes :data:`ABSENT`.
        """
        return self._chunks.get(number)

    def __contains__(self, hour: int) -> bool:
        chunk, i = divmod(hour, CHUNK_HOURS)
        arrays = self._chunks.get(chunk)
        return arrays is not None and arrays[0][i] != ABSENT

    def take(self, hour: int) -> tuple[int | None, float]:
        """``hour``'s value, forgotten; ``(None, 0.0)`` when there is none."""
        chunk, i = divmod(hour, CHUNK_HOURS)
        arrays = self._chunks.get(chunk)
        if arrays is None:
            return None, 0.0
        volumes = arrays[0]
        volume = volumes[i]
        if volume == ABSENT:
            return None, 0.0
        volumes[i] = ABSENT
        return (None if volume == NULL else volume), arrays[1][i]

    def drop_before(self, hour: int) -> None:
        """Forget the chunks that end before ``hour`` (hours are judged in order)."""
        first = hour // CHUNK_HOURS
        for chunk in [c for c in self._chunks if c < first]:
            del self._chunks[chunk]
