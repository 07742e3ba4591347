"""What the counter connectors produce: counting points and their count observations."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal, Self

from pydantic import Field, model_validator

from byflyt.models.base import KommuneNr, Mode, PointKeyed, UtcDatetime

MAX_INTERVAL = timedelta(hours=1)


class CountPoint(PointKeyed):
    """A counting point (a bike counter, a traffic registration point) and its data span."""

    name: str = ""
    kommune_nr: KommuneNr
    mode: Mode = "bicycle"
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    first_data: UtcDatetime | None = None
    latest_data: UtcDatetime | None = None
    operational_status: str | None = None


class _PointRecord(PointKeyed):
    """A record about one counting point, keyed by the point (its fields lead the JSON)."""

    kommune_nr: KommuneNr
    mode: Mode = "bicycle"


class CountObservation(_PointRecord):
    """A count over an interval of at most one hour, with the coverage the source reports.

    ``volume`` is None when the source has no count for the interval (coverage 0): missing is
    never zero.
    """

    start: UtcDatetime
    end: UtcDatetime
    volume: int | None = Field(default=None, ge=0, le=1_000_000)
    coverage: float = Field(ge=0, le=100)
    retrieved_at: UtcDatetime | None = None
    kind: Literal["count"] = "count"

    @model_validator(mode="after")
    def _check_interval(self) -> CountObservation:
        length = self.end - self.start
        if length <= timedelta(0):
            raise ValueError(f"interval end {self.end} is not after start {self.start}")
        if length > MAX_INTERVAL:
            raise ValueError(f"interval {self.start}–{self.end} is longer than one hour")
        return self

    @classmethod
    def from_bytes(cls, raw: bytes | str) -> Self:
        """A record of either wire version (``models/codec_counts``: msgpack v2, JSON v1)."""
        if isinstance(raw, bytes) and raw and (0x90 <= raw[0] <= 0x9F or raw[0] == 0xDC):
            from byflyt.models import codec_counts

            record = codec_counts.to_observation(codec_counts.decode(raw))
            return cls.model_validate(record.model_dump())
        return cls.model_validate_json(raw)


class FetchedWindow(_PointRecord):
    """The hours ``[since, until)`` a connector asked its source for, for one point.

    A point is judged only over the hours its source was asked for: a gap between fetched
    windows is *not ingested* (nobody asked), never an outage of the counter.
    """

    since: UtcDatetime
    until: UtcDatetime
    fetched_at: UtcDatetime | None = None

    @model_validator(mode="after")
    def _check_window(self) -> FetchedWindow:
        if self.until <= self.since:
            raise ValueError(f"window end {self.until} is not after its start {self.since}")
        return self
