"""Shared field types: aware UTC datetimes, kommune numbers, modes, and the JSON wire format."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
)

from byflyt.models.kommuner import normalise_kommune_nr


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware (naive times are ambiguous)")
    return value.astimezone(UTC)


def iso_z(value: datetime) -> str:
    """An aware datetime as ISO 8601 UTC with a ``Z``: ``2025-10-26T01:00:00Z``."""
    text = value.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


UtcDatetime = Annotated[
    datetime, AfterValidator(_aware_utc), PlainSerializer(iso_z, return_type=str, when_used="json")
]
"""A timezone-aware datetime, normalised to UTC, written as ``…Z`` in JSON."""

KommuneNr = Annotated[str, BeforeValidator(normalise_kommune_nr)]
"""A 4-character kommune number ("0301"); integers such as 301 are accepted and padded."""

SourceName = Annotated[str, Field(min_length=1, max_length=64)]
"""A source's or a transit feed's name (the store keys it in 64 characters)."""

PointId = Annotated[str, Field(min_length=1, max_length=128)]
"""A counting point's id within its source (the store keys it in 128 characters)."""

TransitId = Annotated[str, Field(min_length=1, max_length=256)]
"""A trip, route, stop (quay) or vehicle id as a transit feed gives it."""

Mode = Literal[
    "bicycle",
    "pedestrian",
    "rail",
    "bus",
    "coach",
    "metro",
    "tram",
    "ferry",
    "air",
    "taxi",
    "other",
    "unknown",
    "all",
]

COUNTER_MODES: tuple[Mode, ...] = ("bicycle", "pedestrian")
"""Modes counted by counters (a volume of passages); the rest are transit modes."""


class WireModel(BaseModel):
    """A frozen model that travels through Kafka as JSON bytes."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    def to_bytes(self) -> bytes:
        """The JSON encoding used on every topic."""
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes | str) -> Self:
        """Parse and validate (raises :class:`pydantic.ValidationError`)."""
        return cls.model_validate_json(raw)


class PointKeyed(WireModel):
    """A record about one point of a source (a counter, a feed), keyed by the point.

    ``source`` and ``point_id`` lead the JSON; the Kafka key ``source:point_id`` keeps a point's
    records in order on one partition.
    """

    source: SourceName
    point_id: PointId

    @property
    def key(self) -> str:
        """The Kafka key: ``source:point_id``."""
        return f"{self.source}:{self.point_id}"


def hour_floor(value: datetime) -> datetime:
    """The start of the UTC hour that contains ``value``."""
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
