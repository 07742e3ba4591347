"""The ``byflyt_volume`` gauge: each kommune's value for the current and the previous hour.

Operators watch live counts on it. "Current" and "previous" are the wall clock's UTC hours (the
only place byflyt uses the wall clock for data: what is live now), so the gauge is rolled over
on a timer as well as on every write: at 10:00 the 09:00 value moves from ``current`` to
``previous`` and the 08:00 value disappears. Values for older hours (a backfill, Trafikkdata's
2–3 hour lag) never show up here; they are in the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import faust
from prometheus_client import Gauge

from byflyt.models.base import hour_floor
from byflyt.models.volumes import VolumeFields

ONE_HOUR = timedelta(hours=1)
# How often the agents roll the gauge over to the wall clock's hours.
LIVE_REFRESH_S = 30.0
# kommune, mode, metric, hour start (aware UTC); the store's natural key of a kommune-hour.
LiveKey = tuple[str, str, str, datetime]


class LiveVolumes:
    """Keeps the last two wall-clock hours' values and mirrors them into a gauge."""

    def __init__(self, gauge: Gauge, clock: Callable[[], datetime] | None = None) -> None:
        self._gauge = gauge
        self._clock = clock or (lambda: datetime.now(UTC))
        self._values: dict[LiveKey, float] = {}
        self._shown: set[tuple[str, str, str, str]] = set()

    def update(self, upserts: Iterable[VolumeFields], deletes: Iterable[LiveKey] = ()) -> None:
        """Take the rows just written (and kommune-hours just deleted), then refresh."""
        oldest = hour_floor(self._clock()) - ONE_HOUR
        for row in upserts:
            if row.hour_start >= oldest:
                self._values[(row.kommune_nr, row.mode, row.metric, row.hour_start)] = row.value
        for key in deletes:
            self._values.pop(key, None)
        self.refresh()

    def roll_on(self, app: faust.App) -> None:
        """Refresh every :data:`LIVE_REFRESH_S` on a timer of ``app`` (a quiet stream too)."""

        @app.timer(LIVE_REFRESH_S)
        async def roll_live_hours() -> None:
            self.refresh()

    def refresh(self) -> None:
        """Set the gauge from the kept values for the hours that are current and previous now."""
        current = hour_floor(self._clock())
        names = {current: "current", current - ONE_HOUR: "previous"}
        for key in [k for k in self._values if k[3] not in names]:
            del self._values[key]
        shown: set[tuple[str, str, str, str]] = set()
        for (kommune, mode, metric, hour), value in self._values.items():
            labels = (kommune, mode, metric, names[hour])
            self._gauge.labels(*labels).set(value)
            shown.add(labels)
        for labels in self._shown - shown:
            self._gauge.remove(*labels)
        self._shown = shown
