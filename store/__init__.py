"""The SQL store (SQLAlchemy Core; SQLite by default, PostgreSQL in deployments)."""

from byflyt.store.rows import Fetched, Outage, PointHour, VolumeKey
from byflyt.store.schema import SCHEMA_VERSION, UtcDateTime
from byflyt.store.store import Store

__all__ = [
    "SCHEMA_VERSION",
    "Fetched",
    "Outage",
    "PointHour",
    "Store",
    "UtcDateTime",
    "VolumeKey",
]
