"""``byflyt_volume``: the current and previous wall-clock hour per kommune, rolled over in time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from byflyt.metrics import Metrics
from byflyt.models.volumes import HourlyVolume
from byflyt.streams.live import LiveVolumes
from tests.helpers import kommune_hour


def row(kommune: str, hour: datetime, value: float, mode: str = "bicycle") -> HourlyVolume:
    return kommune_hour(kommune, hour, value, mode=mode)


def test_current_and_previous_hours_roll_over_with_the_clock() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    now = [datetime(2025, 10, 26, 9, 40, tzinfo=UTC)]
    live = LiveVolumes(metrics.volume, clock=lambda: now[0])

    def value(kommune: str, hour: str) -> float | None:
        labels = {"kommune": kommune, "mode": "bicycle", "metric": "volume", "hour": hour}
        return registry.get_sample_value("byflyt_volume", labels)

    nine = datetime(2025, 10, 26, 9, tzinfo=UTC)
    live.update(
        [
            row("3403", nine, 42),
            row("3403", nine - timedelta(hours=1), 17),
            # A backfilled hour (Trafikkdata's lag, a replay) is not live.
            row("3403", nine - timedelta(hours=5), 99),
            row("3407", nine, 5),
        ]
    )
    assert value("3403", "current") == 42
    assert value("3403", "previous") == 17
    assert value("3407", "current") == 5
    assert value("3407", "previous") is None

    # A correction replaces; a kommune-hour deleted from the store leaves the gauge.
    live.update([row("3403", nine, 44)], deletes=[("3407", "bicycle", "volume", nine)])
    assert value("3403", "current") == 44
    assert value("3407", "current") is None

    # At 10:05 the 09:00 value is the previous hour and 08:00 is gone.
    now[0] = datetime(2025, 10, 26, 10, 5, tzinfo=UTC)
    live.refresh()
    assert value("3403", "current") is None
    assert value("3403", "previous") == 44
    samples = [s for m in registry.collect() if m.name == "byflyt_volume" for s in m.samples]
    assert [s.labels["hour"] for s in samples] == ["previous"]

    # Two hours later nothing is live any more.
    now[0] = datetime(2025, 10, 26, 11, 0, tzinfo=UTC)
    live.refresh()
    assert value("3403", "previous") is None
