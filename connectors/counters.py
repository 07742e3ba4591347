"""What the counter connectors (Eco-Counter, Telraam, CSV) share, beside the connector base.

- :class:`LocalTimes` reads a source's times in the site's local zone, with or without an
  offset: an offset-less time that repeats (October's second 02:00) is the later of the two.
- :class:`HourSums` sums intervals of up to an hour (15-minute channels, several directions)
  into UTC hours, with coverage = the share of the expected minutes that reported.
- :func:`is_duplicate` tells whether a point is configured as another source's counter
  (``BYFLYT_COUNTER_DUPLICATES``), so one physical counter is counted once.
- :func:`point_id` names a point of a site or segment and one mode: a point has one mode.
- :class:`PolledHours` is the whole UTC hours a poll asks for (a backfill, or the live window
  from the checkpoint on), :func:`read_checkpoint` the checkpoint a poll starts from.
- :class:`HttpCounterConnector` is what the counter connectors over HTTP (Trafikkdata,
  Eco-Counter, Telraam) take and keep alike: the polling options, the polled hours, the clock
  and the HTTP client.
- :func:`fetched` is the record saying which hours a point's source was asked for
  (``bike.fetched``): a point is judged only over those hours, and a gap between them is "not
  ingested", never an outage.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx

from byflyt.clock import OSLO, utc_now
from byflyt.connectors.base import Connector, ItemT, Record, Window
from byflyt.errors import ConfigError
from byflyt.models import codec_counts
from byflyt.models.base import Mode, hour_floor
from byflyt.models.counts import CountObservation, FetchedWindow
from byflyt.models.geo import LazyLocator
from byflyt.settings import Settings
from byflyt.topics import BIKE_COUNTS, COUNTS_FETCHED

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
HOUR_MINUTES = 60
LOOKBACK = timedelta(hours=48)
"""How far back a live poll without a checkpoint (or ``start``) begins."""


def point_id(site_id: str | int, mode: Mode) -> str:
    """The point id of one mode of a site or segment: ``100023038-bicycle``."""
    return f"{site_id}-{mode}"


def count_record(observation: CountObservation) -> Record:
    """The ``bike.counts`` record of an observation: keyed by kommune, in the compact format.

    The aggregation reads each record where it lands, with no repartition hop.
    """
    return Record(BIKE_COUNTS, observation.kommune_nr, codec_counts.encode(observation))


def fetched(
    source: str,
    point: str,
    kommune_nr: str,
    mode: Mode,
    since: datetime,
    until: datetime,
    at: datetime | None = None,
) -> Record:
    """The ``bike.fetched`` record of one point's window ``[since, until)`` asked for."""
    window = FetchedWindow(
        source=source,
        point_id=point,
        kommune_nr=kommune_nr,
        mode=mode,
        since=since,
        until=until,
        fetched_at=at,
    )
    return Record.of(COUNTS_FETCHED, window)


def hour_runs(hours: Iterable[datetime]) -> list[tuple[datetime, datetime]]:
    """Consecutive UTC hours as windows ``[first, last + 1 h)``, in order."""
    runs: list[tuple[datetime, datetime]] = []
    for hour in sorted(set(hours)):
        if runs and runs[-1][1] == hour:
            runs[-1] = (runs[-1][0], hour + HOUR)
        else:
            runs.append((hour, hour + HOUR))
    return runs


def is_duplicate(settings: Settings, source: str, point: str) -> str | None:
    """The point (``source:point_id``) that counts this one instead, or None."""
    return settings.counter_duplicates.get(f"{source}:{point}")


class LocalTimes:
    """Reads a series of times in order; offset-less ones are local time of ``zone``.

    Sources that write local wall-clock times without an offset write October's repeated hour
    twice; in a series in time order the second one is the later instant (``fold=1``).
    """

    def __init__(self, zone: ZoneInfo = OSLO) -> None:
        self.zone = zone
        self.previous: datetime | None = None

    def read(self, text: object) -> datetime:
        """The next time as an aware UTC datetime (:class:`ValueError` if not ISO 8601)."""
        if not isinstance(text, str):
            raise ValueError(f"time {text!r} is not a string")
        value = datetime.fromisoformat(text.strip())
        if value.tzinfo is None:
            first = value.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
            second = value.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
            previous = self.previous
            value = second if previous is not None and first <= previous < second else first
        value = value.astimezone(UTC)
        self.previous = value
        return value


def read_local_times(texts: Iterable[object], zone: ZoneInfo = OSLO) -> Iterator[datetime]:
    """Parse times in order with :class:`LocalTimes`."""
    times = LocalTimes(zone)
    for text in texts:
        yield times.read(text)


def local_naive(value: datetime, zone: ZoneInfo = OSLO) -> str:
    """``value`` as the source's local wall-clock time without an offset (seconds)."""
    return value.astimezone(zone).replace(tzinfo=None).isoformat(timespec="seconds")


@dataclass
class _Hour:
    volume: int = 0
    counted: bool = False
    minutes_present: float = 0.0
    minutes_expected: float = 0.0


@dataclass
class HourSums:
    """Counts of one point summed into UTC hours with their coverage.

    Each channel (a direction, a lane) adds its intervals with :meth:`add` (``count`` None: the
    interval is missing) and declares the hours it was asked for with :meth:`expect`, so an hour
    with no row at all from a channel counts as missing for that channel.
    """

    hours: dict[datetime, _Hour] = field(default_factory=lambda: defaultdict(_Hour))

    def expect(self, hour: datetime, minutes: float = HOUR_MINUTES) -> None:
        """One channel should have reported ``minutes`` of ``hour``."""
        self.hours[hour_floor(hour)].minutes_expected += minutes

    def add(self, start: datetime, minutes: float, count: int | None) -> None:
        """An interval of ``minutes`` from ``start`` (inside one hour) with its count or None."""
        cell = self.hours[hour_floor(start)]
        if count is not None:
            cell.volume += count
            cell.counted = True
            cell.minutes_present += minutes

    def observations(
        self,
        *,
        source: str,
        point: str,
        kommune_nr: str,
        mode: Mode,
        retrieved_at: datetime,
    ) -> list[CountObservation]:
        """One observation per hour: the measured sum, coverage = share of minutes present."""
        result = []
        for hour in sorted(self.hours):
            cell = self.hours[hour]
            expected = max(cell.minutes_expected, cell.minutes_present, 1.0)
            coverage = round(100.0 * cell.minutes_present / expected, 2)
            result.append(
                CountObservation(
                    source=source,
                    point_id=point,
                    kommune_nr=kommune_nr,
                    mode=mode,
                    start=hour,
                    end=hour + HOUR,
                    volume=cell.volume if cell.counted else None,
                    coverage=coverage if cell.counted else 0.0,
                    retrieved_at=retrieved_at,
                )
            )
        return result


def hours_between(since: datetime, until: datetime) -> list[datetime]:
    """The UTC hour starts in ``[since, until)`` (both whole hours)."""
    return [since + n * HOUR for n in range(max(0, (until - since) // HOUR))]


def hour_ceil(value: datetime) -> datetime:
    """The first whole UTC hour at or after ``value``."""
    floor = hour_floor(value)
    return floor if floor == value else floor + HOUR


@dataclass(frozen=True)
class PolledHours:
    """Which hours a counting connector polls: a ``backfill`` window, or live ones.

    Live, a poll runs from its checkpoint on, or from ``start``, or from ``now − lookback``, to
    ``clock()`` (tests inject a clock to run live windows over past data).
    """

    backfill: Window | None
    start: datetime | None
    lookback: timedelta
    clock: Callable[[], datetime]

    def window(self, checkpoint: datetime | None) -> Window:
        """Whole UTC hours: the backfill window, or the live one from the checkpoint on."""
        now, backfill = self.clock(), self.backfill
        window = (
            backfill
            if backfill is not None
            else Window.live(checkpoint or self.start, now, self.lookback)
        )
        return Window(hour_floor(window.since), hour_ceil(window.until))


class HttpCounterConnector(Connector[ItemT]):
    """A counter connector over HTTP: the hours it polls, its clock and its HTTP client.

    The polling options every such connector takes beside its source's own (subclasses pass
    them on as ``**polling``): ``backfill`` polls those hours and stops instead of following
    live; live, a poll begins at its checkpoint, else at ``start``, else at ``clock() −
    lookback``, and asks for the ``lookback`` hours again each time (sources correct them);
    ``timeout`` is the seconds an HTTP request may take; ``clock`` is what "now" is (tests run
    live windows over past data with their own). Every request carries ``x-client``
    (``BYFLYT_CLIENT_NAME``) and ``headers``.
    """

    def __init__(
        self,
        settings: Settings,
        headers: Mapping[str, str] | None = None,
        *,
        backfill: Window | None = None,
        start: datetime | None = None,
        lookback: timedelta = LOOKBACK,
        timeout: float = 30.0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if start is not None and start.utcoffset() is None:
            raise ConfigError("--from", "the start time is naive", "give a time with an offset")
        self.settings = settings
        self.hours = PolledHours(backfill, start, lookback, clock)
        self.clock = clock
        self._client = httpx.Client(
            headers={"x-client": settings.client_name, **(headers or {})},
            timeout=httpx.Timeout(timeout),
        )
        self.locate = LazyLocator(settings)
        """The kommune a site at ``lat``/``lon`` lies in (boundaries read on first use)."""

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()


def read_checkpoint(position: str | None, source: str) -> datetime | None:
    """A poll's checkpoint (an ISO time); an unreadable one is logged and read as none."""
    try:
        return None if position is None else datetime.fromisoformat(position).astimezone(UTC)
    except ValueError:
        log.warning("%s: ignoring unreadable checkpoint %r", source, position)
        return None
