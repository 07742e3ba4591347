"""The shapes the ``/api/v1`` routes answer with (their OpenAPI schema)."""

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

_Item = TypeVar("_Item", bound=BaseModel)


class Links(BaseModel):
    """Where this page, the next and the previous are (relative URLs; null at the ends)."""

    self: str
    next: str | None
    prev: str | None


class Page(BaseModel, Generic[_Item]):
    """One page of a list."""

    items: list[_Item]
    total: int = Field(description="Items in the whole list.")
    limit: int
    offset: int
    links: Links


class RegionItem(BaseModel):
    """A region: a named set of kommuner."""

    key: str
    name: str
    kommuner: list[str]
    counties: list[str]
    note: str


class KommuneItem(BaseModel):
    """A kommune (2024 numbering) and the regions it belongs to."""

    kommune_nr: str
    kommune: str
    regions: list[str]


class PointItem(BaseModel):
    """A counting point."""

    source: str
    point_id: str
    name: str
    kommune_nr: str
    kommune: str
    mode: str
    lat: float | None
    lon: float | None
    first_data: str | None
    latest_data: str | None
    operational_status: str | None


class HourlyItem(BaseModel):
    """A kommune-hour value: the columns of ``byflyt query hourly``."""

    kommune_nr: str
    kommune: str
    mode: str
    metric: str
    hour_start: str = Field(description="UTC start of the hour, e.g. 2025-10-26T01:00:00Z.")
    value: float
    coverage: float = Field(description="Percent of expected sensor-hours that reported.")
    n_sources: int


class OutageItem(BaseModel):
    """A period when a counter or feed was silent, flat, short of coverage, stale or empty."""

    source: str
    point_id: str
    kind: str
    started: str
    ended: str | None
    open: bool
    duration_seconds: int
    """Until now when it is open."""
    kommune_nr: str | None
    kommune: str | None
    details: str


class IndexRow(BaseModel):
    """The area's row or one point's row of ``byflyt index`` (``level`` says which)."""

    level: str
    id: str
    name: str
    kommune_nr: str
    kommune: str
    matched_hours: int
    base: float
    current: float
    index_pct: float | None
    weight: float | None
    ci_low: float | None
    ci_high: float | None
    n_points: int | None
    status: str


class IndexAnswer(BaseModel):
    """An area's index against the same period a year earlier, with its points (paged)."""

    mode: str
    period: str
    from_: str = Field(alias="from")
    to: str
    base_from: str
    base_to: str
    min_hours: int
    min_coverage: float
    sd: float | None
    se: float | None
    t: float | None
    area: IndexRow
