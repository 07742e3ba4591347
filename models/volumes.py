"""What the agents produce: hourly values per kommune, mode and metric."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from pydantic import Field, field_validator

from byflyt.models.base import KommuneNr, Mode, UtcDatetime, WireModel, iso_z


class HourlyVolume(WireModel):
    """One kommune-hour value of one metric, with its coverage (0–100) and how many sources."""

    kommune_nr: KommuneNr
    mode: Mode
    metric: str = Field(min_length=1, max_length=64, pattern=r"^[a-z_]+$")
    hour_start: UtcDatetime
    value: float
    coverage: float = Field(ge=0, le=100)
    n_sources: int = Field(ge=0)

    @field_validator("hour_start")
    @classmethod
    def _whole_hour(cls, value: datetime) -> datetime:
        if value.minute or value.second or value.microsecond:
            raise ValueError("hour_start must be a whole UTC hour")
        return value

    @property
    def key(self) -> str:
        """The compacted topic's key: ``kommune_nr|mode|metric|hour``."""
        return volume_key(self.kommune_nr, self.mode, self.metric, self.hour_start)


class VolumeFields(Protocol):
    """What the store and the live gauge read of a kommune-hour value.

    :class:`HourlyVolume`'s fields: the model, or a row the cycling flush makes without it.
    """

    # Read-only, as the model's frozen fields are.
    @property
    def kommune_nr(self) -> str: ...  # noqa: D102
    @property
    def mode(self) -> str: ...  # noqa: D102
    @property
    def metric(self) -> str: ...  # noqa: D102
    @property
    def hour_start(self) -> datetime: ...  # noqa: D102
    @property
    def value(self) -> float: ...  # noqa: D102
    @property
    def coverage(self) -> float: ...  # noqa: D102
    @property
    def n_sources(self) -> int: ...  # noqa: D102


def volume_key(kommune_nr: str, mode: str, metric: str, hour_start: datetime) -> str:
    """The natural key of a kommune-hour value."""
    return f"{kommune_nr}|{mode}|{metric}|{iso_z(hour_start)}"
