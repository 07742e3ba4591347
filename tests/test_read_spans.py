"""Which stored hours the cycling sink reads for a batch's unknown kommune-hours."""

from __future__ import annotations

from byflyt.streams.cycling import LOOKAHEAD_S, RUN_GAP_S, _run_ahead

H = 3600
T0 = 1_735_689_600  # 2025-01-01T00:00Z


def test_a_backfill_batch_longer_than_the_lookahead_is_spanned_whole_and_ahead() -> None:
    hours = [T0 + i * H for i in range(600)]  # 25 days, more than the 14-day lookahead
    assert _run_ahead(hours) == (T0, T0 + 599 * H + LOOKAHEAD_S)


def test_the_span_starts_after_the_newest_gap_and_older_hours_are_left_out() -> None:
    old = [T0 - 300 * 86400, T0 - 299 * 86400]  # a correction months back
    recent = [T0 + i * H for i in range(48)]
    first, last = _run_ahead([*recent, *old])  # given in any order
    assert (first, last) == (T0, T0 + 47 * H + LOOKAHEAD_S)


def test_gaps_up_to_a_day_stay_in_the_run() -> None:
    hours = [T0, T0 + RUN_GAP_S, T0 + 2 * RUN_GAP_S + H]
    assert _run_ahead(hours) == (T0 + 2 * RUN_GAP_S + H, T0 + 2 * RUN_GAP_S + H + LOOKAHEAD_S)
    assert _run_ahead(hours[:2]) == (T0, T0 + RUN_GAP_S + LOOKAHEAD_S)


def test_one_hour() -> None:
    assert _run_ahead([T0]) == (T0, T0 + LOOKAHEAD_S)
