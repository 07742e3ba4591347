"""Synthetic Mjøsbyen weeks for Eco-Counter and Telraam, deterministic from a seed.

Made up (see ``SYNTHETIC_NOTICE``) but shaped like the sources. The week is 22–29 October 2025
(Europe/Oslo), across the autumn clock change, so one local day has 25 hours.

Eco-Counter: sites with channels per mode and direction (``userType`` 2 bicycle, 1 pedestrian;
15- or 60-minute ``interval``; ``sens`` 1 and 2). Every value is keyed by channel and the UTC
start of its interval; ``None`` is a gap (``null`` with ``complete=true``). Known quirks: a few
missing quarters (``PARTIAL``), one channel silent for a day, a car-only site, a site outside
the region.

Telraam: road segments with a line geometry; rows only in daylight hours with ``uptime`` < 1
at dawn and dusk, and a row with ``uptime`` 0 at each day's edges. Counts are stored as the
camera *measured* them (whole numbers); the server reports them scaled by 1/uptime, as Telraam
does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from byflyt.clock import OSLO

HOUR = timedelta(hours=1)
QUARTER = timedelta(minutes=15)
WEEK_START = datetime(2025, 10, 22, tzinfo=OSLO).astimezone(UTC)
WEEK_END = datetime(2025, 10, 29, tzinfo=OSLO).astimezone(UTC)

SYNTHETIC_NOTICE = (
    "SYNTETISKE DATA / SYNTHETIC DATA: made-up Eco-Counter and Telraam counts in the sources' "
    "shapes, not measurements."
)

# Share of the peak by local hour of day (walking and cycling peak at different times).
_BIKE = (0, 0, 0, 0, 0, 0.1, 0.4, 1.0, 0.8, 0.4, 0.3, 0.35, 0.4, 0.35, 0.4, 0.7, 0.9, 0.6, 0.4,
         0.3, 0.2, 0.1, 0.05, 0.02)  # fmt: skip
_WALK = (0.02, 0.01, 0, 0, 0, 0.02, 0.1, 0.3, 0.4, 0.5, 0.7, 0.9, 1.0, 0.95, 0.9, 0.85, 0.8,
         0.7, 0.5, 0.35, 0.25, 0.15, 0.08, 0.04)  # fmt: skip


@dataclass(frozen=True)
class EcoChannel:
    """One channel: ``user_type`` 1 pedestrian, 2 bicycle, 4 car; ``interval`` in minutes."""

    id: int
    user_type: int
    interval: int
    sens: int
    peak: int


@dataclass(frozen=True)
class EcoSite:
    """A counting site (``synthetic`` in its name) and its channels."""

    id: int
    name: str
    lat: float
    lon: float
    kommune_nr: str
    channels: tuple[EcoChannel, ...]
    offsets: bool  # whether the v1 API writes its dates with an offset


@dataclass(frozen=True)
class EcoCounterDataset:
    """Sites and every channel's values by UTC interval start (None: a gap)."""

    sites: tuple[EcoSite, ...]
    values: dict[int, dict[datetime, int | None]]
    start: datetime = WEEK_START
    end: datetime = WEEK_END

    def site_span(self, site: EcoSite) -> tuple[datetime, datetime]:
        """The first and last interval start with data, over the site's channels."""
        starts = [t for c in site.channels for t, v in self.values[c.id].items() if v is not None]
        return min(starts), max(starts)


SILENT_CHANNEL = 101_003
PARTIAL: dict[int, tuple[datetime, ...]] = {
    101_001: tuple(WEEK_START + timedelta(hours=h, minutes=15 * q) for h, q in ((8, 1), (33, 3))),
    102_001: tuple(WEEK_START + timedelta(hours=h, minutes=15 * q) for h, q in ((12, 0), (12, 2))),
    103_001: (WEEK_START + timedelta(hours=40),),  # both directions: a missing hour
    103_002: (WEEK_START + timedelta(hours=40),),
}


def _sites() -> tuple[EcoSite, ...]:
    def site(
        sid: int, name: str, lat: float, lon: float, kommune: str, offsets: bool, *chans: tuple
    ) -> EcoSite:
        return EcoSite(
            sid, f"{name} (syntetisk)", lat, lon, kommune, tuple(EcoChannel(*c) for c in chans),
            offsets,
        )  # fmt: skip

    return (
        site(100_001, "Strandgata Hamar", 60.7945, 11.0680, "3403", False,
             (101_001, 2, 15, 1, 60), (101_002, 2, 15, 2, 50),
             (101_003, 1, 15, 1, 40), (101_004, 1, 15, 2, 45)),
        site(100_002, "Gågata Lillehammer", 61.1148, 10.4662, "3405", True,
             (102_001, 1, 15, 1, 120), (102_002, 2, 60, 1, 30)),
        site(100_003, "Hunnselva Gjøvik", 60.7985, 10.6920, "3407", True,
             (103_001, 2, 60, 1, 45), (103_002, 2, 60, 2, 40)),
        site(100_004, "Rv 3 Elverum", 60.8810, 11.5620, "3420", False, (104_001, 4, 60, 1, 400)),
        site(100_005, "Kongsvinger sentrum", 60.1910, 11.9990, "3401", False,
             (105_001, 2, 15, 1, 30)),
    )  # fmt: skip


def eco_counter_week(seed: int = 17) -> EcoCounterDataset:
    """The synthetic Eco-Counter week."""
    rng = random.Random(seed)
    sites = _sites()
    values: dict[int, dict[datetime, int | None]] = {}
    for site in sites:
        for channel in site.channels:
            profile = _WALK if channel.user_type == 1 else _BIKE
            step = timedelta(minutes=channel.interval)
            series: dict[datetime, int | None] = {}
            at = WEEK_START
            while at < WEEK_END:
                local = at.astimezone(OSLO)
                mean = channel.peak * profile[local.hour] * channel.interval / 60
                series[at] = max(0, round(mean * rng.uniform(0.7, 1.3)))
                at += step
            for gap in PARTIAL.get(channel.id, ()):
                series[gap] = None
            if channel.id == SILENT_CHANNEL:  # the third local day: nothing at all
                day = datetime(2025, 10, 24, tzinfo=OSLO).astimezone(UTC)
                for t in series:
                    if day <= t < day + 24 * HOUR:
                        series[t] = None
            values[channel.id] = series
    return EcoCounterDataset(sites, values)


# -- Telraam ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TelraamSegment:
    """A road segment (``oidn``) with its line and the hourly rows its camera measured."""

    id: int
    name: str
    line: tuple[tuple[float, float], ...]  # (lon, lat)
    kommune_nr: str
    rows: dict[datetime, TelraamHour] = field(default_factory=dict)


@dataclass(frozen=True)
class TelraamHour:
    """What the camera measured in one hour (whole numbers) and its ``uptime``."""

    uptime: float
    bike: int
    pedestrian: int
    car: int
    heavy: int


@dataclass(frozen=True)
class TelraamDataset:
    """Segments and their measured hours (UTC hour starts); absent hours: dark."""

    segments: tuple[TelraamSegment, ...]
    start: datetime = WEEK_START
    end: datetime = WEEK_END


def _uptime(local_hour: int) -> float:
    """Daylight in late October at 61° N: about 08–17; dawn and dusk half-seen."""
    if local_hour in (7, 17):
        return 0.0
    if local_hour in (8, 16):
        return 0.45
    if 9 <= local_hour <= 15:
        return 0.9 if local_hour != 12 else 0.75
    return -1.0  # dark: no row at all


def telraam_week(seed: int = 29) -> TelraamDataset:
    """The synthetic Telraam week: two segments in the region, one outside."""
    rng = random.Random(seed)
    specs = (
        (9_000_017_001, "Grønnegata Hamar (syntetisk)", ((11.0712, 60.7968), (11.0760, 60.7981)),
         "3403", 30, 50),
        (9_000_017_002, "Kirkegata Gjøvik (syntetisk)", ((10.6905, 60.7958), (10.6951, 60.7969)),
         "3407", 18, 35),
        (9_000_017_003, "Storgata Kongsvinger (syntetisk)",
         ((11.9985, 60.1905), (12.0030, 60.1912)),
         "3401", 10, 20),
    )  # fmt: skip
    segments = []
    for sid, name, line, kommune, bike_peak, walk_peak in specs:
        rows: dict[datetime, TelraamHour] = {}
        at = WEEK_START
        while at < WEEK_END:
            local = at.astimezone(OSLO).hour
            uptime = _uptime(local)
            if uptime >= 0:
                seen = max(uptime, 0.0)
                rows[at] = TelraamHour(
                    uptime=uptime,
                    bike=round(bike_peak * _BIKE[local] * seen * rng.uniform(0.7, 1.3)),
                    pedestrian=round(walk_peak * _WALK[local] * seen * rng.uniform(0.7, 1.3)),
                    car=round(200 * seen * rng.uniform(0.7, 1.3)),
                    heavy=round(12 * seen * rng.uniform(0.5, 1.5)),
                )
            at += HOUR
        segments.append(TelraamSegment(sid, name, line, kommune, rows))
    return TelraamDataset(tuple(segments))
