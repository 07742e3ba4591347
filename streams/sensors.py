"""The sensor state machines, pure: counter points judged by the hour, feeds by the poll.

**Counter points.** :class:`PointMachine` steps through a point's UTC hours in order, one closed
hour at a time. Which hours are closed is decided by the *source's* clock: the newest event hour
seen from the source (minus a grace hour for points polled a little later than others), never
the wall clock, so a source that publishes 2–3 hours late is not an outage. For each hour the
machine keeps three runs:

* silent: hours without data (volume None or coverage 0) since the last data; only hours at
  which the point *normally* has data count (see below), the others neither count nor break the
  run. A zero with coverage is data: a counter reading 0 at 3 a.m. is not silent.
* flat: daytime hours (Europe/Oslo) with data and the same volume, zero or not; only where the
  point normally varies (its mean at each of those hours of day is at least ``flat_min_mean``).
* low coverage: hours with data whose coverage is under the threshold.

**Fetched windows.** A point is judged only over the hours its source was asked for. Once its
fetched windows are known (:meth:`PointMachine.set_fetched`, from the connectors' ``bike.fetched``
records as the store keeps them), an hour without a record outside every window is *not
ingested*: it neither counts towards nor breaks recovery, is not learnt, and ends the point's
silent, flat and low-coverage runs (nothing can be said across it); hours after the newest
window wait until their window is known. A point with no windows on record is judged at every
hour, as before windows were recorded.

"Normal" is the point's own history: for each Europe/Oslo hour of day, over the last
``history_days`` of hours judged while the point was up, how often it had data and its mean
volume. An hour of day with fewer than ``min_history_days`` of history is not judged, so a new
point is never silent or flat. Runs and steps are UTC hours, so 23- and 25-hour days need
nothing special; only the hour-of-day profile is local, because people cycle by local time.

A run that reaches its threshold opens that state (silent before flat before low coverage),
dated from the run's first hour. The way back needs ``recover_hours`` good hours in a row
(hysteresis): data for ``silent``, full coverage for ``low_coverage``, another volume for
``flat``; a state of higher priority replaces a lower one at once.

**Feeds.** :class:`FeedMachine` steps through the polls of one feed (:class:`FeedHealth`):
``stale`` when the snapshot is older than ``stale_seconds`` at read time, ``empty`` when its
entity count falls under ``empty_share`` of the usual count for that hour of day (learnt from
healthy snapshots only). Cancelled journeys are entities, so mass cancellations stay ``up``.
``bad_snapshots`` bad polls in a row open a state, ``recover_snapshots`` good ones close it.

Every change is a :class:`Change`; the agent turns it into outage rows, a ``sensors.status``
record and the gauge. The machines are deterministic functions of their input, so replaying
the same hours or polls gives the same changes and the same outage keys.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Final

from byflyt.clock import OSLO
from byflyt.models.base import iso_z
from byflyt.models.codec_counts import Count
from byflyt.models.status import UP, FeedHealth
from byflyt.settings import FeedThresholds, PointThresholds
from byflyt.streams.pending import (
    ABSENT,
    CHUNK_HOURS,
    PendingHours,
    hour_at,
    hour_number,
    local_hour_of,
)

HOUR: Final = timedelta(hours=1)
EWMA_WEIGHT: Final = 0.05
"""Weight of a new snapshot in a feed's usual entity count for its hour of day."""

PRIORITY: Final = {"silent": 0, "flat": 1, "low_coverage": 2, "stale": 0, "empty": 1}
"""Lower is more severe: a more severe state replaces a less severe one without recovering."""


@dataclass(frozen=True)
class Change:
    """A sensor's state changed: ``previous`` (None when first seen) to ``state``.

    ``since`` is when the new state began (event time); ``previous_since`` when the previous
    one did, so an outage closed by this change is ``(previous, previous_since, since)``.
    """

    source: str
    point_id: str
    sensor: str
    kommune_nr: str | None
    previous: str | None
    previous_since: datetime | None
    state: str
    since: datetime
    as_of: datetime
    details: str = ""

    @property
    def closes(self) -> bool:
        """Whether this change ends an outage."""
        return self.previous is not None and self.previous != UP

    @property
    def opens(self) -> bool:
        """Whether this change starts an outage."""
        return self.state != UP


@lru_cache(maxsize=1 << 14)
def local_hour(hour: datetime) -> int:
    """The Europe/Oslo hour of day of an aware instant (cached: every point asks for each hour)."""
    return hour.astimezone(OSLO).hour


@dataclass(slots=True)
class _Run:
    start: int | None = None
    """The run's first hour (an hour number)."""
    count: int = 0

    def extend(self, hour: int, counts: bool = True) -> None:
        if self.start is None:
            self.start = hour
        if counts:
            self.count += 1

    def reset(self) -> None:
        self.start, self.count = None, 0


class _Sensor:
    """What both machines share: wording a change of their state as a :class:`Change`."""

    def _who(self) -> tuple[str, str, str, str | None]:
        """``(source, point_id, sensor, kommune_nr)`` of this machine's changes."""
        raise NotImplementedError

    def _change(
        self,
        previous: str | None,
        previous_since: datetime | None,
        state: str,
        since: datetime,
        as_of: datetime,
        details: str = "",
    ) -> Change:
        source, point_id, sensor, kommune_nr = self._who()
        return Change(
            source=source,
            point_id=point_id,
            sensor=sensor,
            kommune_nr=kommune_nr,
            previous=previous,
            previous_since=previous_since,
            state=state,
            since=since,
            as_of=as_of,
            details=details,
        )


@dataclass
class PointMachine(_Sensor):
    """The state of one counter point (see the module docstring); hours counted as numbers."""

    source: str
    point_id: str
    kommune_nr: str
    thresholds: PointThresholds
    hours: PendingHours = field(default_factory=PendingHours)
    state: str = UP
    since: datetime | None = None
    details: str = ""
    _next: int | None = None
    _silent: _Run = field(default_factory=_Run)
    _low: _Run = field(default_factory=_Run)
    _flat: _Run = field(default_factory=_Run)
    _flat_value: int | None = None
    _flat_varies: bool = True
    _stuck_value: int | None = None
    _good: _Run = field(default_factory=_Run)
    _window: deque[tuple[int, int, bool, int]] = field(default_factory=deque)
    fetched: list[tuple[datetime, datetime]] | None = None
    """The windows ``[since, until)`` the source was asked for, in order; None: not known."""
    _spans: list[tuple[float, float]] | None = None
    """:attr:`fetched` in epoch seconds."""
    _seen: list[int] = field(default_factory=lambda: [0] * 24)
    _with_data: list[int] = field(default_factory=lambda: [0] * 24)
    _volume: list[int] = field(default_factory=lambda: [0] * 24)

    @property
    def next_hour(self) -> datetime | None:
        """The next hour to judge."""
        return None if self._next is None else hour_at(self._next)

    def add(self, hour: datetime, volume: int | None, coverage: float) -> None:
        """Record the point's (latest) value for a UTC hour; a judged hour is not judged again."""
        self.add_number(hour_number(hour), volume, coverage)

    def add_number(self, hour: int, volume: int | None, coverage: float) -> None:
        """:meth:`add` of an hour number (:func:`hour_number`)."""
        if self._next is None:
            self._next = hour
        elif hour < self._next:
            if self.since is not None:
                return  # late for an hour already judged: kept in the store, not re-judged
            self._next = hour
        self.hours.put(hour, volume, coverage)

    def set_fetched(self, windows: list[tuple[datetime, datetime]]) -> None:
        """The windows of hours the point's source was asked for (sorted, disjoint)."""
        self.fetched = sorted(windows)
        self._spans = [(since.timestamp(), until.timestamp()) for since, until in self.fetched]

    def advance(self, until: datetime) -> list[Change]:
        """Judge every hour up to and including ``until``; return the changes."""
        limit = until.timestamp()
        if self._spans:
            # Hours after the newest window wait for theirs: not judged as "not ingested".
            limit = min(limit, self._spans[-1][1] - 3600)
        changes: list[Change] = []
        hour = self._next
        if hour is None:
            return changes
        last = int(limit // 3600)
        step, quiet = self._step, self._quiet
        while hour <= last:
            if self.state == UP and self.since is not None and self._spans is None:
                hour = quiet(hour, last)
                if hour > last:
                    break
            found = step(hour)
            if found:
                changes.extend(found)
            hour += 1
        self._next = hour
        self.hours.drop_before(hour)
        return changes

    def _quiet(self, hour: int, last: int) -> int:
        """Judge the hours from ``hour`` on while nothing can change; the first hour left.

        :meth:`_step` for the usual hour of a point that is up (and has been judged before,
        with no fetched windows on record): a record with data at full enough coverage, in
        the daytime a volume other than the flat run's. Such an hour ends the silent and low
        coverage runs, starts a new flat run in the daytime, and is learnt; no run can reach
        its threshold, so no state changes. The same steps as :meth:`_step`, without its
        calls; the first hour that is not usual is left for :meth:`_step`, untouched.
        """
        th = self.thresholds
        low_pct, min_days = th.low_coverage_pct, th.min_history_days
        day_start, day_end, min_mean = th.day_start_hour, th.day_end_hour, th.flat_min_mean
        history = th.history_days * 24
        flat, silent, low = self._flat, self._silent, self._low
        seen_by, data_by, volume_by = self._seen, self._with_data, self._volume
        window = self._window
        chunk = self.hours.chunk
        flat_value = self._flat_value
        # Outside the daytime the flat run is left as it is: it must stay under its threshold.
        night_ok = flat.count < th.flat_hours
        chunk_no = -1
        volumes, coverages = array("q"), array("d")
        while hour <= last:
            number, i = divmod(hour, CHUNK_HOURS)
            if number != chunk_no:
                arrays = chunk(number)
                if arrays is None:
                    break
                chunk_no, (volumes, coverages) = number, arrays
            volume = volumes[i]
            if volume < 0:  # no record, or one without a volume
                break
            coverage = coverages[i]
            if coverage <= 0 or coverage < low_pct:
                break
            hod = local_hour_of(hour)
            daytime = day_start <= hod < day_end
            if daytime:
                if volume == flat_value:
                    break
            elif not night_ok:
                break
            volumes[i] = ABSENT
            if silent.start is not None:
                silent.reset()
            if low.start is not None:
                low.reset()
            seen = seen_by[hod]
            if daytime:
                with_data = data_by[hod]
                mean = volume_by[hod] / with_data if with_data else 0.0
                flat.start, flat.count = hour, 1
                flat_value = volume
                self._flat_varies = seen >= min_days and mean >= min_mean
                night_ok = True  # a flat run of 1 is under its threshold (at least 2)
            # _learn, with data
            window.append((hour, hod, True, volume))
            seen_by[hod] = seen + 1
            data_by[hod] += 1
            volume_by[hod] += volume
            horizon = hour - history
            while window and window[0][0] <= horizon:
                _, old_hod, old_has, old_volume = window.popleft()
                seen_by[old_hod] -= 1
                data_by[old_hod] -= old_has
                volume_by[old_hod] -= old_volume if old_has else 0
            hour += 1
        self._flat_value = flat_value
        return hour

    def _was_fetched(self, hour: int) -> bool:
        """Whether the source was asked for ``hour`` (True when the windows are not known)."""
        if self._spans is None or hour in self.hours:  # a record proves the hour was asked for
            return True
        at = hour * 3600
        return any(since <= at < until for since, until in self._spans)

    # -- one hour ----------------------------------------------------------------------------
    def _step(self, hour: int) -> list[Change] | None:
        th = self.thresholds
        if not self._was_fetched(hour):  # not ingested: nothing to judge, no run spans it
            self._silent.reset()
            self._low.reset()
            self._flat.reset()
            self._flat_value = None
            return None
        volume, coverage = self.hours.take(hour)
        has = volume is not None and coverage > 0
        hod = local_hour_of(hour)
        seen = self._seen[hod]
        trusted = seen >= th.min_history_days
        expected = trusted and self._with_data[hod] >= th.expected_share * seen
        daytime = th.day_start_hour <= hod < th.day_end_hour
        changes: list[Change] | None = None
        if self.since is None:
            self.since = at = hour_at(hour)
            changes = [self._change(None, None, UP, at, at + HOUR)]

        silent, low = self._silent, self._low
        if has:
            if silent.start is not None:  # a run with no start has nothing to reset
                silent.reset()
            if coverage < th.low_coverage_pct:
                low.extend(hour)
            elif low.start is not None:
                low.reset()
        else:
            silent.extend(hour, counts=expected)
        if has and daytime:
            varies = trusted and self._mean(hod) >= th.flat_min_mean
            if volume == self._flat_value:
                self._flat.extend(hour)
                self._flat_varies = self._flat_varies and varies
            else:
                self._flat.start, self._flat.count = hour, 1  # a new run from this hour
                self._flat_value, self._flat_varies = volume, varies

        bad = (
            self._bad()  # only a run at its threshold opens a state
            if silent.count >= th.silent_hours
            or self._flat.count >= th.flat_hours
            or low.count >= th.low_coverage_hours
            else None
        )
        if self.state == UP:
            if bad is not None:
                changes = [*(changes or ()), self._open(*bad, hour)]
        else:
            good = self._is_good(has, expected, daytime, volume, coverage)
            if good:
                self._good.extend(hour)
            elif good is not None:
                self._good.reset()
            changes = changes or []
            if self._good.count >= th.recover_hours and self._good.start is not None:
                start = hour_at(self._good.start)
                changes.append(self._change(self.state, self.since, UP, start, hour_at(hour + 1)))
                self.state, self.since, self.details = UP, start, ""
                self._good.reset()
                if bad is not None:
                    changes.append(self._open(*bad, hour))
            elif bad is not None and PRIORITY[bad[0]] < PRIORITY[self.state]:
                changes.append(self._open(*bad, hour))

        if self.state == UP:
            self._learn(hour, hod, has, volume or 0)
        return changes

    def _bad(self) -> tuple[str, int, str] | None:
        th = self.thresholds
        silent, flat, low = self._silent, self._flat, self._low
        if silent.count >= th.silent_hours and silent.start is not None:
            details = f"no data for {silent.count} hours where the point normally has data"
            return "silent", silent.start, details
        if flat.count >= th.flat_hours and self._flat_varies and flat.start is not None:
            details = f"volume {self._flat_value} for {flat.count} daytime hours"
            return "flat", flat.start, details
        if low.count >= th.low_coverage_hours and low.start is not None:
            details = f"coverage under {th.low_coverage_pct:g} % for {low.count} hours"
            return "low_coverage", low.start, details
        return None

    def _is_good(
        self, has: bool, expected: bool, daytime: bool, volume: int | None, coverage: float
    ) -> bool | None:
        """Whether an hour counts towards recovery (None: it neither counts nor breaks)."""
        if self.state == "silent":
            return True if has else (False if expected else None)
        if self.state == "low_coverage":
            return coverage >= self.thresholds.low_coverage_pct if has else None
        if has and daytime:  # flat
            return volume != self._stuck_value
        return None

    def _open(self, state: str, start: int, details: str, hour: int) -> Change:
        since = hour_at(start)
        change = self._change(self.state, self.since, state, since, hour_at(hour + 1), details)
        self.state, self.since, self.details = state, since, details
        self._stuck_value = self._flat_value if state == "flat" else None
        self._good.reset()
        return change

    def _who(self) -> tuple[str, str, str, str | None]:
        return self.source, self.point_id, "point", self.kommune_nr

    # -- history -----------------------------------------------------------------------------
    def _mean(self, hod: int) -> float:
        return self._volume[hod] / self._with_data[hod] if self._with_data[hod] else 0.0

    def _learn(self, hour: int, hod: int, has: bool, volume: int) -> None:
        window = self._window
        window.append((hour, hod, has, volume))
        self._seen[hod] += 1
        self._with_data[hod] += has
        self._volume[hod] += volume if has else 0
        horizon = hour - self.thresholds.history_days * 24
        while window and window[0][0] <= horizon:
            _, old_hod, old_has, old_volume = window.popleft()
            self._seen[old_hod] -= 1
            self._with_data[old_hod] -= old_has
            self._volume[old_hod] -= old_volume if old_has else 0


@dataclass
class SourceClock:
    """A counter source's points and its clock: the newest event hour seen from it."""

    source: str
    thresholds: PointThresholds
    points: dict[str, PointMachine] = field(default_factory=dict)
    _newest: int | None = None
    """The newest hour seen (an hour number)."""

    @property
    def newest(self) -> datetime | None:
        """The newest event hour seen from the source."""
        return None if self._newest is None else hour_at(self._newest)

    def add(
        self, point_id: str, kommune_nr: str, hour: datetime, volume: int | None, coverage: float
    ) -> None:
        """Record one point-hour and move the clock."""
        self.add_number(point_id, kommune_nr, hour_number(hour), volume, coverage)

    def add_number(
        self, point_id: str, kommune_nr: str, hour: int, volume: int | None, coverage: float
    ) -> None:
        """:meth:`add` of an hour number (:func:`hour_number`)."""
        machine = self.points.get(point_id)
        if machine is None:
            machine = PointMachine(self.source, point_id, kommune_nr, self.thresholds)
            self.points[point_id] = machine
        machine.kommune_nr = kommune_nr
        machine.add_number(hour, volume, coverage)
        if self._newest is None or hour > self._newest:
            self._newest = hour

    def add_counts(self, counts: Iterable[Count]) -> None:
        """:meth:`add_number` of each count observation (of this source), in order.

        One loop for a whole batch, as the cycling sink hands it over: the same steps as
        :meth:`add_number` per observation, with a point's usual case (an hour not before the
        next one it judges) put straight into its pending hours.
        """
        points, newest = self.points, self._newest
        for obs in counts:
            point_id, kommune_nr = obs.point_id, obs.kommune_nr
            machine = points.get(point_id)
            if machine is None:
                machine = PointMachine(self.source, point_id, kommune_nr, self.thresholds)
                points[point_id] = machine
            machine.kommune_nr = kommune_nr
            hour = obs.start // 3600  # the hour number (whole hours since the epoch)
            following = machine._next
            if following is not None and hour >= following:
                machine.hours.put(hour, obs.volume, obs.coverage)
            else:
                machine.add_number(hour, obs.volume, obs.coverage)
            if newest is None or hour > newest:
                newest = hour
        self._newest = newest

    def set_fetched(self, point_id: str, windows: list[tuple[datetime, datetime]]) -> None:
        """The windows the source was asked for, for one point seen from it."""
        machine = self.points.get(point_id)
        if machine is not None:
            machine.set_fetched(windows)

    @property
    def closed_until(self) -> datetime | None:
        """The newest hour every point should have by now (the source's clock minus grace)."""
        newest = self.newest
        if newest is None:
            return None
        return newest - self.thresholds.grace_hours * HOUR

    def advance(self) -> list[Change]:
        """Judge every point up to :attr:`closed_until`."""
        until = self.closed_until
        if until is None:
            return []
        return [c for machine in self.points.values() for c in machine.advance(until)]


@dataclass
class FeedMachine(_Sensor):
    """The state of one transit feed (see the module docstring); a plain dict in a table."""

    source: str
    kind: str
    state: str = UP
    since: str | None = None
    bad_kind: str | None = None
    bad_start: str | None = None
    bad_count: int = 0
    good_start: str | None = None
    good_count: int = 0
    empty: bool = False
    usual: list[list[float]] = field(default_factory=lambda: [[0.0, 0] for _ in range(24)])

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeedMachine:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """The machine as JSON-able values (for a faust table)."""
        return dict(self.__dict__)

    def step(self, health: FeedHealth, th: FeedThresholds) -> list[Change]:
        """Judge one poll; return the changes."""
        at = health.read_at
        changes: list[Change] = []
        if self.since is None:
            self.since = iso_z(at)
            changes.append(self._change(None, None, UP, at, at))
        hod = local_hour(health.snapshot_at or at)
        if health.entities is not None:
            usual, samples = self.usual[hod]
            self.empty = samples >= th.min_samples and health.entities < th.empty_share * usual
            if not self.empty and self.state != "empty":
                weight = 1.0 if samples == 0 else EWMA_WEIGHT
                self.usual[hod] = [usual + weight * (health.entities - usual), samples + 1]
        age = health.age_seconds
        bad: str | None = None
        details = ""
        if age is not None and age > th.stale_seconds:
            bad, details = "stale", f"snapshot {age:.0f} s old when read"
        elif self.empty:
            usual = self.usual[hod][0]
            bad, details = "empty", f"{health.entities} entities, usually {usual:.0f}"
        if bad is not None and bad == self.bad_kind:
            self.bad_count += 1
        else:
            self.bad_kind, self.bad_count = bad, 1 if bad else 0
            self.bad_start = iso_z(at) if bad else None

        if self.state != UP:
            if bad is None:
                self.good_start = self.good_start or iso_z(at)
                self.good_count += 1
            else:
                self.good_start, self.good_count = None, 0
            if self.good_count >= th.recover_snapshots and self.good_start is not None:
                start = datetime.fromisoformat(self.good_start)
                changes.append(self._change(self.state, self._since(), UP, start, at))
                self.state, self.since = UP, iso_z(start)
                self.good_start, self.good_count = None, 0
        worse = bad is not None and (self.state == UP or PRIORITY[bad] < PRIORITY[self.state])
        if worse and bad and self.bad_start and self.bad_count >= th.bad_snapshots:
            start = datetime.fromisoformat(self.bad_start)
            changes.append(self._change(self.state, self._since(), bad, start, at, details))
            self.state, self.since = bad, iso_z(start)
            self.good_start, self.good_count = None, 0
        return changes

    def _since(self) -> datetime | None:
        return datetime.fromisoformat(self.since) if self.since else None

    def _who(self) -> tuple[str, str, str, str | None]:
        return self.source, self.kind, "feed", None
