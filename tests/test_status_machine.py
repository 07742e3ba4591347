"""The counter point state machine on hand-made hour series (pure: no Kafka, no store).

Series are UTC hours; the point's daily rhythm is in Europe/Oslo hours, as people cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from byflyt.clock import OSLO
from byflyt.models.codec_counts import Count
from byflyt.settings import PointThresholds
from byflyt.streams.sensors import HOUR, Change, PointMachine, SourceClock

TH = PointThresholds(
    silent_hours=3,
    flat_hours=4,
    flat_min_mean=3.0,
    low_coverage_pct=50,
    low_coverage_hours=3,
    recover_hours=2,
    grace_hours=1,
    history_days=14,
    min_history_days=3,
)
MONDAY = datetime(2025, 10, 6, tzinfo=UTC)
Value = tuple[int | None, float]
Shape = Callable[[datetime], Value]


def daytime_only(hour: datetime) -> Value:
    """Counts from 06 to 22 local time, nothing (null, coverage 0) at night."""
    local = hour.astimezone(OSLO).hour
    if 6 <= local < 22:
        return 10 + (local * 7 + hour.day) % 13, 100.0
    return None, 0.0


def zeros_at_night(hour: datetime) -> Value:
    """Counts by day, true zeros (full coverage) at night."""
    local = hour.astimezone(OSLO).hour
    return (10 + (local * 7 + hour.day) % 13 if 6 <= local < 22 else 0), 100.0


def every_hour(hour: datetime) -> Value:
    """A busy point: data at every hour."""
    return 5 + (hour.hour * 5 + hour.day) % 17, 100.0


def series(start: datetime, hours: int, shape: Shape) -> dict[datetime, Value]:
    return {start + n * HOUR: shape(start + n * HOUR) for n in range(hours)}


def judge(data: dict[datetime, Value], until: datetime | None = None) -> list[Change]:
    machine = PointMachine("test", "P1", "3403", TH)
    for hour, (volume, coverage) in sorted(data.items()):
        machine.add(hour, volume, coverage)
    return machine.advance(until or max(data))


def outages(changes: list[Change]) -> list[tuple[str, datetime, datetime | None]]:
    """(kind, started, ended) of every outage the changes open and close."""
    found: dict[tuple[str, datetime], datetime | None] = {}
    for c in changes:
        if c.closes and c.previous and c.previous_since:
            found[(c.previous, c.previous_since)] = c.since
        if c.opens:
            found[(c.state, c.since)] = None
    return [(kind, start, end) for (kind, start), end in sorted(found.items(), key=str)]


def test_a_new_point_starts_up_once() -> None:
    changes = judge(series(MONDAY, 48, daytime_only))
    assert [(c.previous, c.state, c.since) for c in changes] == [(None, "up", MONDAY)]


@pytest.mark.parametrize("shape", [zeros_at_night, daytime_only])
@pytest.mark.parametrize(
    "start",
    [MONDAY, datetime(2025, 10, 20, tzinfo=UTC), datetime(2025, 3, 24, tzinfo=UTC)],
    ids=["plain", "autumn-25h-day", "spring-23h-day"],
)
def test_night_zeros_and_usual_night_nulls_are_not_silent(start: datetime, shape: Shape) -> None:
    changes = judge(series(start, 14 * 24, shape))
    assert outages(changes) == []


def test_a_stopped_counter_goes_silent_and_comes_back_with_hysteresis() -> None:
    data = series(MONDAY, 8 * 24, daytime_only)
    stop = datetime(2025, 10, 13, 10, tzinfo=UTC)  # 12:00 local, Monday of week two
    resume = datetime(2025, 10, 14, 7, tzinfo=UTC)  # 09:00 local the next day
    for hour in list(data):
        if stop <= hour < resume:
            data[hour] = (None, 0.0)
    # Back for one hour, gone again for one expected hour: not yet recovered.
    data[resume] = (12, 100.0)
    data[resume + HOUR] = (None, 0.0)
    end = resume + 2 * HOUR
    for n in range(4):
        data[end + n * HOUR] = (11 + n, 100.0)
    changes = judge(data)
    silent = next(c for c in changes if c.state == "silent")
    assert silent.since == stop
    assert silent.as_of == stop + 3 * HOUR  # three expected hours without data
    assert "no data for 3 hours" in silent.details
    back = next(c for c in changes if c.previous == "silent")
    assert (back.state, back.since) == ("up", end)  # two good hours in a row needed
    assert back.as_of == end + 2 * HOUR
    assert outages(changes) == [("silent", stop, end)]


def test_a_stop_before_the_night_is_silent_only_after_expected_hours() -> None:
    data = series(MONDAY, 8 * 24 + 12, daytime_only)
    stop = datetime(2025, 10, 13, 19, tzinfo=UTC)  # 21:00 local: one expected hour left
    for hour in list(data):
        if hour >= stop:
            data[hour] = (None, 0.0)
    (silent,) = [c for c in judge(data) if c.state == "silent"]
    assert silent.since == stop
    # 21:00 counts; 22:00–05:59 local do not; 06:00 and 07:00 local complete the three.
    assert silent.as_of == datetime(2025, 10, 14, 6, tzinfo=UTC)


def test_source_lag_is_not_an_outage() -> None:
    clock = SourceClock("trafikkdata", TH)
    # The source publishes 2 hours late: its newest hour is two hours before the wall clock.
    newest = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 2 * HOUR
    start = newest - timedelta(days=7)
    for point in ("A", "B", "C"):
        for hour, (volume, coverage) in series(start, 7 * 24 + 1, every_hour).items():
            # C is polled a little later than the others: its newest hour is not in yet.
            if point == "C" and hour == newest:
                continue
            clock.add(point, "3403", hour, volume, coverage)
    changes = clock.advance()
    assert clock.closed_until == newest - HOUR
    assert all(c.state == "up" for c in changes)
    assert len(changes) == 3  # each point's first "up", nothing else


def test_hours_are_judged_by_the_source_clock_not_the_points_own() -> None:
    clock = SourceClock("trafikkdata", TH)
    start = MONDAY
    stop = MONDAY + timedelta(days=5)
    for hour, (volume, coverage) in series(start, 6 * 24, every_hour).items():
        clock.add("A", "3403", hour, volume, coverage)
        if hour < stop:
            clock.add("B", "3403", hour, volume, coverage)
    changes = clock.advance()
    (silent,) = [c for c in changes if c.state == "silent"]
    assert (silent.point_id, silent.since, silent.as_of) == ("B", stop, stop + 3 * HOUR)


def test_a_flat_counter_and_its_recovery() -> None:
    data = series(MONDAY, 8 * 24, daytime_only)
    stuck = datetime(2025, 10, 13, 6, tzinfo=UTC)  # 08:00 local
    for n in range(6):
        data[stuck + n * HOUR] = (99, 100.0)
    changes = judge(data)
    flat = next(c for c in changes if c.state == "flat")
    assert flat.since == stuck
    assert flat.as_of == stuck + 4 * HOUR
    assert "volume 99 for 4 daytime hours" in flat.details
    back = next(c for c in changes if c.previous == "flat")
    assert back.since == stuck + 6 * HOUR
    assert outages(changes) == [("flat", stuck, stuck + 6 * HOUR)]


def test_a_quiet_point_reading_zero_by_day_is_not_flat() -> None:
    def quiet(hour: datetime) -> Value:
        return (1 if hour.hour % 5 == 0 else 0), 100.0  # mean well under flat_min_mean

    assert outages(judge(series(MONDAY, 10 * 24, quiet))) == []


def test_low_coverage_and_its_recovery() -> None:
    data = series(MONDAY, 8 * 24, every_hour)
    low = datetime(2025, 10, 13, 3, tzinfo=UTC)
    for n in range(5):
        data[low + n * HOUR] = (4, 40.0)
    data[low + 5 * HOUR] = (9, 100.0)
    data[low + 6 * HOUR] = (9, 45.0)  # one good hour is not enough
    changes = judge(data)
    opened = next(c for c in changes if c.state == "low_coverage")
    assert (opened.since, opened.as_of) == (low, low + 3 * HOUR)
    assert outages(changes) == [("low_coverage", low, low + 7 * HOUR)]


@pytest.mark.parametrize(
    ("stop", "as_of"),
    [
        # 01:00 local on 26 October; 02:00 local happens twice, 3 UTC hours are 4 on the clock.
        (datetime(2025, 10, 25, 23, tzinfo=UTC), datetime(2025, 10, 26, 2, tzinfo=UTC)),
        # 01:00 local on 30 March; 02:00 local does not exist, 3 UTC hours are 2 on the clock.
        (datetime(2025, 3, 29, 23, tzinfo=UTC), datetime(2025, 3, 30, 2, tzinfo=UTC)),
    ],
    ids=["25-hour-day", "23-hour-day"],
)
def test_dst_days_are_counted_in_utc_hours(stop: datetime, as_of: datetime) -> None:
    data = series(stop - timedelta(days=7), 7 * 24 + 10, every_hour)
    for hour in list(data):
        if hour >= stop:
            data[hour] = (None, 0.0)
    (silent,) = [c for c in judge(data) if c.state == "silent"]
    assert (silent.since, silent.as_of) == (stop, as_of)


def test_judging_is_deterministic_and_late_hours_are_not_rejudged() -> None:
    data = series(MONDAY, 8 * 24, daytime_only)
    stop = datetime(2025, 10, 13, 10, tzinfo=UTC)
    for hour in list(data):
        if hour >= stop:
            data[hour] = (None, 0.0)
    assert judge(data) == judge(dict(reversed(list(data.items()))))
    machine = PointMachine("test", "P1", "3403", TH)
    for hour, (volume, coverage) in sorted(data.items()):
        machine.add(hour, volume, coverage)
    first = machine.advance(max(data))
    machine.add(stop, 50, 100.0)  # a correction after the hour was judged
    assert machine.advance(max(data)) == []
    assert [c.state for c in first] == ["up", "silent"]


def test_thresholds_are_settings_per_source() -> None:
    from byflyt.settings import load_settings

    settings = load_settings(status_by_source={"trafikkdata": {"silent_hours": 5}})
    assert settings.point_thresholds("trafikkdata").silent_hours == 5
    assert settings.point_thresholds("eco-counter").silent_hours == 3


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"point_status": {"silent_hours": 0}}, "BYFLYT_POINT_STATUS.SILENT_HOURS"),
        ({"status_by_source": {"t": {"nope": 1}}}, "unknown or mixed keys"),
        ({"status_by_source": {"t": {"empty_share": 2}}}, "'t'.empty_share"),
    ],
)
def test_wrong_thresholds_fail_at_start_with_one_line(
    overrides: dict[str, object], words: str
) -> None:
    from byflyt.errors import ConfigError
    from byflyt.settings import load_settings

    with pytest.raises(ConfigError) as caught:
        load_settings(**overrides)
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


# -- fetched windows -------------------------------------------------------------------------
WEEK_2024 = (datetime(2024, 10, 21, tzinfo=UTC), datetime(2024, 10, 28, tzinfo=UTC))
WEEK_2025 = (datetime(2025, 10, 20, tzinfo=UTC), datetime(2025, 10, 27, tzinfo=UTC))


def two_weeks(stop_after: timedelta | None = None) -> dict[datetime, Value]:
    """A week of 2024 and a week of 2025 as fetched; with ``stop_after``, the counter stops
    that long into the 2025 week (its hours then come as missing: fetched, without data)."""
    data = series(WEEK_2024[0], 7 * 24, daytime_only)
    for hour, value in series(WEEK_2025[0], 7 * 24, daytime_only).items():
        stopped = stop_after is not None and hour >= WEEK_2025[0] + stop_after
        data[hour] = (None, 0.0) if stopped else value
    return data


def judge_fetched(
    data: dict[datetime, Value], windows: list[tuple[datetime, datetime]] | None
) -> list[Change]:
    clock = SourceClock("test", TH)
    for hour, (volume, coverage) in sorted(data.items()):
        clock.add("P1", "3403", hour, volume, coverage)
    if windows is not None:
        clock.set_fetched("P1", windows)
    return clock.advance()


def test_the_year_nobody_fetched_is_not_an_outage() -> None:
    gap_hours = (WEEK_2025[0] - WEEK_2024[1]) / HOUR
    # Judged at every hour (no windows known), the year between reads as one long silence.
    blind = outages(judge_fetched(two_weeks(), None))
    assert [(kind, (end - start) / HOUR > gap_hours - 24) for kind, start, end in blind if end] == [
        ("silent", True)
    ]
    # Judged only over the hours the source was asked for, it is no outage at all.
    changes = judge_fetched(two_weeks(), [WEEK_2024, WEEK_2025])
    assert [(c.previous, c.state) for c in changes] == [(None, "up")]


def test_a_counter_that_stops_inside_a_fetched_window_is_still_silent() -> None:
    stop = timedelta(days=3, hours=6)
    found = outages(judge_fetched(two_weeks(stop), [WEEK_2024, WEEK_2025]))
    assert [kind for kind, _, end in found if end is None] == ["silent"]
    (started,) = [start for kind, start, end in found if end is None]
    assert WEEK_2025[0] + stop <= started < WEEK_2025[1]


def test_hours_after_the_newest_window_wait_for_it() -> None:
    clock = SourceClock("test", TH)
    for hour, (volume, coverage) in sorted(series(WEEK_2024[0], 48, daytime_only).items()):
        clock.add("P1", "3403", hour, volume, coverage)
    clock.set_fetched("P1", [(WEEK_2024[0], WEEK_2024[0] + 24 * HOUR)])
    clock.advance()
    assert clock.points["P1"].next_hour == WEEK_2024[0] + 24 * HOUR
    clock.set_fetched("P1", [(WEEK_2024[0], WEEK_2024[0] + 48 * HOUR)])
    clock.advance()
    # Now the source's clock decides: its newest hour less the grace hours.
    newest = WEEK_2024[0] + 47 * HOUR
    assert clock.points["P1"].next_hour == newest - TH.grace_hours * HOUR + HOUR


def test_a_batch_of_counts_moves_the_clock_as_the_same_counts_one_by_one() -> None:
    # Two points, hours out of order (a backlog, a correction, an hour before the first) and
    # one judged in between: the batch path and add() give the same changes.
    stop = datetime(2025, 10, 13, 10, tzinfo=UTC)
    rows: list[tuple[str, datetime, int | None, float]] = []
    for point, shape in (("P1", daytime_only), ("P2", every_hour)):
        for hour, (volume, coverage) in series(MONDAY, 8 * 24, shape).items():
            rows.append((point, hour, None if hour >= stop else volume, coverage))
    rows.sort(key=lambda row: (row[1], row[0]))
    rows[100:140] = reversed(rows[100:140])
    first, rest = rows[:150], [*rows[150:], ("P1", MONDAY - 5 * HOUR, 3, 100.0)]
    rest.append(("P2", MONDAY + 20 * HOUR, 99, 50.0))  # a correction of an hour judged

    def count(point: str, hour: datetime, volume: int | None, coverage: float) -> Count:
        start = int(hour.timestamp())
        return Count("test", point, "3403", "bicycle", start, start + 3600, volume, coverage)

    one_by_one, batched = SourceClock("test", TH), SourceClock("test", TH)
    changes: list[list[Change]] = [[], []]
    for part in (first, rest):
        for point, hour, volume, coverage in part:
            one_by_one.add(point, "3403", hour, volume, coverage)
        batched.add_counts([count(*row) for row in part])
        changes[0] += one_by_one.advance()
        changes[1] += batched.advance()
    assert batched.newest == one_by_one.newest
    assert changes[1] == changes[0]
    assert {c.state for c in changes[0]} == {"up", "silent"}


class _StepByStep(PointMachine):
    """The machine with every hour judged by ``_step`` (no quiet-hour shortcut)."""

    def _quiet(self, hour: int, last: int) -> int:
        return hour


def _state(machine: PointMachine) -> dict[str, object]:
    """Everything a machine remembers, comparable."""
    chunks = {n: (list(v), list(c)) for n, (v, c) in machine.hours._chunks.items()}
    return {
        **{k: v for k, v in vars(machine).items() if k != "hours"},
        "hours": chunks,
        "runs": [(r.start, r.count) for r in (machine._silent, machine._low, machine._flat)],
    }


@pytest.mark.parametrize("seed", range(12))
def test_quiet_hours_are_judged_as_step_by_step(seed: int) -> None:
    """The shortcut for usual hours changes nothing: the same changes and the same state.

    Random series with every kind of hour (gaps, nulls, zero and low coverage, flat runs by
    day and night, late hours), judged in random steps, against the machine that judges
    every hour with ``_step``.
    """
    import random

    rng = random.Random(seed)
    th = PointThresholds(
        silent_hours=rng.choice([1, 3]),
        flat_hours=rng.choice([2, 4]),
        flat_min_mean=rng.choice([0.0, 3.0]),
        low_coverage_pct=rng.choice([0.0, 50.0]),
        low_coverage_hours=rng.choice([1, 3]),
        recover_hours=2,
        history_days=rng.choice([3, 14]),
        min_history_days=rng.choice([1, 3]),
    )
    fast = PointMachine("test", "P1", "3403", th)
    slow = _StepByStep("test", "P1", "3403", th)
    start = MONDAY + rng.randrange(48) * HOUR
    hour, fast_changes, slow_changes = start, [], []
    for _ in range(60):
        for _ in range(rng.randrange(1, 80)):
            kind = rng.random()
            if kind < 0.03:
                hour += rng.randrange(2, 30) * HOUR  # a gap
            volume: int | None = rng.randrange(0, 40)
            coverage = 100.0
            if kind < 0.08:
                volume = None
            elif kind < 0.12:
                coverage = 0.0
            elif kind < 0.16:
                coverage = 25.0
            elif kind < 0.30:
                volume = 7  # flat runs
            at = hour - rng.randrange(0, 40) * HOUR if rng.random() < 0.02 else hour  # late
            for machine in (fast, slow):
                machine.add(at, volume, coverage)
            hour += HOUR
        until = hour - rng.randrange(0, 5) * HOUR
        fast_changes += fast.advance(until)
        slow_changes += slow.advance(until)
        assert fast_changes == slow_changes
        assert _state(fast) == _state(slow)
    assert len(slow_changes) > 1  # the series did open states
