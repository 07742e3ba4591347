"""Eco-Counter's sites in its two dialects: what a site list entry says, and the credentials.

A v1 site has channels (``userType`` 1 pedestrian, 2 bicycle; ``interval`` 15 or 60 minutes;
direction ``sens``), a v2 site ``travelModes`` at one ``granularity``; both become an
:class:`EcoSite` with one :class:`Channel` per mode and direction, placed in a kommune by its
coordinates. :mod:`byflyt.connectors.eco_counter` asks for them and for their counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from byflyt.connectors.counters import read_local_times
from byflyt.errors import ConfigError
from byflyt.models.base import Mode
from byflyt.settings import Settings

Api = Literal["v1", "v2"]
V1_MODES: dict[int, Mode] = {1: "pedestrian", 2: "bicycle"}
V2_MODES: dict[str, Mode] = {"bike": "bicycle", "pedestrian": "pedestrian"}
V2_NAMES: dict[Mode, str] = {mode: name for name, mode in V2_MODES.items()}


@dataclass(frozen=True)
class Channel:
    """A v1 channel (one mode and direction) or a v2 flow, in minutes per interval."""

    id: str
    mode: Mode
    interval: int
    direction: str = ""


@dataclass(frozen=True)
class EcoSite:
    """A counting site in the region with the modes it counts (each mode one point)."""

    id: str
    name: str
    lat: float
    lon: float
    kommune_nr: str
    channels: tuple[Channel, ...]
    first_data: datetime | None = None
    last_data: datetime | None = None

    @property
    def modes(self) -> list[Mode]:
        """The modes of its channels, bicycle first."""
        return sorted({c.mode for c in self.channels})


def interval_minutes(granularity: Any) -> int:
    """``PT15M`` → 15, ``PT1H`` → 60 (v2 site granularity)."""
    text = str(granularity or "PT1H").upper()
    if text == "PT1H":
        return 60
    if text.startswith("PT") and text.endswith("M") and text[2:-1].isdigit():
        return int(text[2:-1])
    raise ValueError(f"granularity {granularity!r} is not PT15M or PT1H")


def site_time(value: Any) -> datetime | None:
    """A site's ``firstData``/``lastData`` (local time, with or without an offset), or None."""
    if value in (None, ""):
        return None
    return next(read_local_times([str(value)]))


def read_site(entry: Any, api: Api, locate: Callable[[float, float], str | None]) -> EcoSite | None:
    """A site list entry of dialect ``api`` as a site placed by ``locate``.

    None when it counts neither bicycles nor walking; a ValueError says what is unreadable.
    """
    if not isinstance(entry, dict):
        raise ValueError("a site is not a JSON object")
    site_id = str(entry.get("id") or "")
    if not site_id:
        raise ValueError("a site has no id")
    if api == "v1":
        lat, lon = entry.get("latitude"), entry.get("longitude")
        channels = v1_channels(entry)
        first, last = site_time(entry.get("firstData")), None
    else:
        location = entry.get("location") or {}
        lat, lon = location.get("lat"), location.get("lon")
        minutes = interval_minutes(entry.get("granularity"))
        modes = [V2_MODES[m] for m in entry.get("travelModes") or [] if m in V2_MODES]
        channels = tuple(Channel(site_id, mode, minutes) for mode in modes)
        first, last = site_time(entry.get("firstData")), site_time(entry.get("lastData"))
    if not channels:
        return None
    if not isinstance(lat, int | float) or not isinstance(lon, int | float):
        raise ValueError(f"site {site_id} has no coordinates")
    kommune = locate(float(lat), float(lon))
    if kommune is None:
        raise ValueError(f"site {site_id} at {lat}, {lon} is in no Norwegian kommune")
    return EcoSite(
        id=site_id,
        name=str(entry.get("name") or ""),
        lat=float(lat),
        lon=float(lon),
        kommune_nr=kommune,
        channels=channels,
        first_data=first,
        last_data=last,
    )


def v1_channels(entry: dict[str, Any]) -> tuple[Channel, ...]:
    """A v1 site's bicycle and pedestrian channels (a site without channels is its own)."""
    raw = entry.get("channels") or [entry]  # a site without channels is its own channel
    channels = []
    for channel in raw:
        mode = V1_MODES.get(channel.get("userType"))
        if mode is None:
            continue
        interval = channel.get("interval") or 15
        if interval not in (15, 60):
            raise ValueError(f"channel {channel.get('id')} has interval {interval}, not 15/60")
        channels.append(
            Channel(str(channel["id"]), mode, int(interval), str(channel.get("sens", "")))
        )
    return tuple(channels)


def credentials(settings: Settings, api: Api) -> tuple[str, str]:
    """The dialect's credentials; a missing one stops the command naming the setting."""
    if api == "v2":
        if settings.eco_counter_api_key is None:
            raise ConfigError(
                "BYFLYT_ECO_COUNTER_API_KEY",
                "is not set",
                "set the X-API-KEY of your API v2 access",
            )
        return settings.eco_counter_api_key.get_secret_value(), ""
    for name, value in (
        ("BYFLYT_ECO_COUNTER_CLIENT_ID", settings.eco_counter_client_id),
        ("BYFLYT_ECO_COUNTER_CLIENT_SECRET", settings.eco_counter_client_secret),
    ):
        if value is None:
            raise ConfigError(name, "is not set", "set the OAuth2 client of your API v1 access")
    assert settings.eco_counter_client_id is not None
    assert settings.eco_counter_client_secret is not None
    return (
        settings.eco_counter_client_id.get_secret_value(),
        settings.eco_counter_client_secret.get_secret_value(),
    )
