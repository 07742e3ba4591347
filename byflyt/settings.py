"""byflyt's configuration: one frozen settings object, read once at the edge.

Every value comes from a ``BYFLYT_``-prefixed environment variable or a ``.env`` file. Nothing
below the command line reads ``os.environ``; code receives a :class:`Settings` instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from byflyt.errors import ConfigError

DEFAULT_BROKER_PORT = 9092
_HOSTPORT = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")
_STORE_SCHEMES = ("sqlite", "postgresql")


def _default_data_dir() -> Path:
    # Like .venv: a checkout keeps its jars, broker and store beside it; deployments set the path.
    return Path.cwd() / ".byflyt"


class PointThresholds(BaseModel):
    """When a counter point is ``silent``, ``flat`` or ``low_coverage``, and when it is back.

    Hours are UTC hours of the source's own clock (its newest event hour, minus
    ``grace_hours``), never the wall clock. "Normal" is the point's own history over the last
    ``history_days``, per Europe/Oslo hour of day, counted only while the point was up; an hour
    of day needs ``min_history_days`` of history before it is judged.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    silent_hours: int = Field(default=3, ge=1, le=168)
    flat_hours: int = Field(default=6, ge=2, le=168)
    flat_min_mean: float = Field(default=3.0, ge=0)
    low_coverage_pct: float = Field(default=50.0, ge=0, le=100)
    low_coverage_hours: int = Field(default=3, ge=1, le=168)
    recover_hours: int = Field(default=2, ge=1, le=168)
    grace_hours: int = Field(default=1, ge=0, le=24)
    history_days: int = Field(default=28, ge=1, le=365)
    min_history_days: int = Field(default=3, ge=1, le=365)
    expected_share: float = Field(default=0.5, gt=0, le=1)
    day_start_hour: int = Field(default=7, ge=0, le=23)
    day_end_hour: int = Field(default=21, ge=1, le=24)

    @model_validator(mode="after")
    def _check(self) -> PointThresholds:
        if self.min_history_days > self.history_days:
            raise ValueError(
                f"min_history_days {self.min_history_days} is more than history_days "
                f"{self.history_days}"
            )
        if self.day_start_hour >= self.day_end_hour:
            raise ValueError(
                f"day_start_hour {self.day_start_hour} is not before day_end_hour "
                f"{self.day_end_hour}"
            )
        return self


class FeedThresholds(BaseModel):
    """When a transit feed is ``stale`` or ``empty``, and when it is back (counted in polls).

    The usual entity count is learnt per Europe/Oslo hour of day from the feed's healthy
    snapshots; an hour of day needs ``min_samples`` snapshots before "empty" is judged.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    stale_seconds: float = Field(default=300.0, gt=0)
    empty_share: float = Field(default=0.25, gt=0, le=1)
    bad_snapshots: int = Field(default=3, ge=1, le=10_000)
    recover_snapshots: int = Field(default=3, ge=1, le=10_000)
    min_samples: int = Field(default=30, ge=1, le=100_000)


class Settings(BaseSettings):
    """All of byflyt's settings. Frozen: build a new one to change a value."""

    model_config = SettingsConfigDict(
        env_prefix="BYFLYT_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where the local broker, its jars, the SQLite store and checkpoints live.",
    )
    kafka_bootstrap: str | None = Field(
        default=None,
        description="host:port[,host:port…] of an external Kafka; unset means the local broker.",
    )
    broker_port: int = Field(default=DEFAULT_BROKER_PORT, ge=1, le=65535)
    kafka_libs: Path | None = Field(
        default=None, description="Folder of Kafka jars; default <data_dir>/kafka/libs."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._\-]*$")
    topic_partitions: int = Field(default=4, ge=1, le=1000)
    store_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<data_dir>/byflyt.sqlite."
    )
    app_id: str = Field(default="byflyt", pattern=r"^[A-Za-z0-9._\-]+$")
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535)
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Where a connector (`byflyt ingest …`) serves /metrics; unset: nowhere.",
    )
    serve_host: str = Field(
        default="127.0.0.1", description="Where `byflyt serve` (live page and API) listens."
    )
    serve_port: int = Field(default=8066, ge=1, le=65535)
    serve_poll_seconds: float = Field(
        default=5.0, ge=0.2, le=3600, description="How often the live page asks for new state."
    )
    serve_topics: bool = Field(
        default=True,
        description="Whether the live page also follows volumes.hourly and sensors.status.",
    )
    serve_token: SecretStr | None = Field(
        default=None,
        description="Bearer token the API (/api/v1) requires; needed to listen beyond loopback "
        "unless `byflyt serve --public`.",
    )
    serve_cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to read the API from a browser (CORS), JSON: "
        '["https://dash.example.org"]; empty: no CORS headers at all.',
    )
    serve_max_page_size: int = Field(
        default=10_000,
        ge=1000,  # the lists' default page sizes stay within it
        le=100_000,
        description="Largest `limit` a list request may ask.",
    )
    serve_max_range_days: int = Field(
        default=366,
        ge=1,
        le=3660,
        description="Longest [from, to) an hourly request may ask, in days (366: a leap year).",
    )
    serve_index_reuse_seconds: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="How long `byflyt serve` reuses a computed /api/v1/index answer for the "
        "same question (an index reads every point-hour of two periods); 0: compute each time.",
    )
    serve_state_reuse_seconds: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="How long `byflyt serve` reuses the live page's state (/live/state.json) "
        "for the same region, at most the page's poll interval; 0: build it for every request.",
    )
    ready_max_lag: int = Field(
        default=10_000,
        ge=0,
        description="Records a worker (or serve's topic follower) may be behind and still be "
        "ready (/readyz).",
    )
    region: str | None = Field(default=None, description="Default region, e.g. mjosbyen.")
    client_name: str = Field(
        default="byflyt-dev", description="Sent as x-client / ET-Client-Name to the sources."
    )
    kommuner_geojson: Path | None = Field(
        default=None,
        description="Kommune boundaries (GeoJSON, optionally .gz); unset: the shipped 2024 "
        "boundaries (© Kartverket, CC BY 4.0).",
    )
    regions_file: Path | None = Field(
        default=None, description="Extra or overriding region definitions (JSON)."
    )
    hour_retention_days: int = Field(
        default=60,
        ge=1,
        le=3650,
        description="Days of hour state an aggregation keeps in memory, behind the newest event "
        "hour it has seen (eviction only: stored results are never deleted by it).",
    )
    late_grace_days: int = Field(
        default=3650,
        ge=1,
        le=36500,
        description="How far behind the newest hour of its kommune a count may be and still be "
        "aggregated (recomputed from the stored point-hours); older goes to dlq.rejected as "
        "too_late and leaves the store untouched.",
    )
    index_min_hours: int = Field(
        default=168,
        ge=1,
        le=8784,
        description="Matched hours a point needs to take part in the index (168: one week).",
    )

    max_calls_per_journey: int = Field(
        default=1000,
        ge=10,
        le=100_000,
        description="Calls one journey or trip may have (SIRI, GTFS-realtime, GTFS static); "
        "longer ones are rejected. Norway's longest journeys have a few hundred.",
    )
    max_record_bytes: int = Field(
        default=900_000,
        ge=10_000,
        le=100_000_000,
        description="Largest record a connector produces; larger ones go to the dead-letter "
        "topic (keep it under the broker's message.max.bytes, 1 MiB by default).",
    )
    gtfs_max_uncompressed_bytes: int = Field(
        default=8 * 1024**3,
        ge=1024,
        description="Largest total uncompressed size of a GTFS zip's members.",
    )
    gtfs_max_compression_ratio: float = Field(
        default=200.0,
        ge=2,
        description="Largest uncompressed/compressed ratio of a GTFS zip member (zip bombs).",
    )

    eco_counter_api: Literal["v1", "v2"] = Field(
        default="v1",
        description="Eco-Counter dialect: v1 (OAuth2 client credentials) or v2 (X-API-KEY).",
    )
    eco_counter_client_id: SecretStr | None = Field(
        default=None, description="Eco-Counter API v1: the OAuth2 client id."
    )
    eco_counter_client_secret: SecretStr | None = Field(
        default=None, description="Eco-Counter API v1: the OAuth2 client secret."
    )
    eco_counter_api_key: SecretStr | None = Field(
        default=None, description="Eco-Counter API v2: the X-API-KEY."
    )
    telraam_api_key: SecretStr | None = Field(
        default=None, description="Telraam API: the X-Api-Key."
    )
    counter_duplicates: dict[str, str] = Field(
        default_factory=dict,
        description="The same physical counter in two sources, counted once: JSON "
        '{"eco-counter:100023038-bicycle": "trafikkdata:10795B1743428"} drops the first '
        "(source:point_id) and keeps the second.",
    )

    point_status: PointThresholds = Field(
        default_factory=PointThresholds,
        description='Counter point status thresholds, JSON, e.g. {"silent_hours": 4}.',
    )
    feed_status: FeedThresholds = Field(
        default_factory=FeedThresholds,
        description='Transit feed status thresholds, JSON, e.g. {"stale_seconds": 120}.',
    )
    status_by_source: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description='Per-source threshold overrides, JSON: {"trafikkdata": {"silent_hours": 4}}.',
    )

    @field_validator("status_by_source")
    @classmethod
    def _check_status_overrides(
        cls, value: dict[str, dict[str, float]], info: ValidationInfo
    ) -> dict[str, dict[str, float]]:
        point_keys, feed_keys = set(PointThresholds.model_fields), set(FeedThresholds.model_fields)
        for source, overrides in value.items():
            # A source is a counter source or a feed: its keys must all be of one kind.
            if set(overrides) <= point_keys:
                base: BaseModel = info.data.get("point_status") or PointThresholds()
            elif set(overrides) <= feed_keys:
                base = info.data.get("feed_status") or FeedThresholds()
            else:
                raise ValueError(
                    f"{source!r} has unknown or mixed keys {sorted(overrides)}; use keys of "
                    f"one kind from {sorted(point_keys)} or {sorted(feed_keys)}"
                )
            try:
                type(base).model_validate({**base.model_dump(), **overrides})
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"]) or "value"
                raise ValueError(f"{source!r}.{where}: {err['msg']}") from None
        return value

    @field_validator("counter_duplicates")
    @classmethod
    def _check_duplicates(cls, value: dict[str, str]) -> dict[str, str]:
        for drop, keep in value.items():
            for key in (drop, keep):
                source, _, point = key.partition(":")
                if not source or not point:
                    raise ValueError(f"{key!r} is not source:point_id")
            if drop == keep or drop.split(":")[0] == keep.split(":")[0]:
                raise ValueError(f"{drop!r} and {keep!r} must be points of two different sources")
            if keep in value:
                raise ValueError(f"{keep!r} is kept for {drop!r} but is itself dropped")
        return value

    @field_validator("serve_token")
    @classmethod
    def _check_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if len(value.get_secret_value()) < 16:
            raise ValueError("is shorter than 16 characters; use e.g. `openssl rand -hex 32`")
        return value

    @field_validator("serve_cors_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin == "*" or not re.match(r"^https?://[^/\s]+$", origin):
                raise ValueError(
                    f"{origin!r} is not an origin; list each as scheme://host[:port], no '*'"
                )
        return value

    @field_validator("kommuner_geojson", "regions_file", mode="before")
    @classmethod
    def _empty_path_is_unset(cls, value: object) -> object:
        # An empty variable (BYFLYT_KOMMUNER_GEOJSON=) means "not set", never the current folder.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        servers = [s.strip() for s in value.removeprefix("kafka://").split(",")]
        for server in servers:
            if not _HOSTPORT.match(server):
                raise ValueError(f"{server!r} is not host:port; write e.g. kafka1:9092,kafka2:9092")
        return ",".join(servers)

    @field_validator("store_url")
    @classmethod
    def _check_store_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        scheme = value.split(":", 1)[0].split("+", 1)[0]
        if scheme not in _STORE_SCHEMES or "://" not in value:
            raise ValueError(
                "must be an SQLAlchemy URL such as sqlite:///path/byflyt.sqlite or "
                "postgresql+psycopg://user:pass@host/db"
            )
        return value

    @model_validator(mode="after")
    def _check_security(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_mechanism and self.kafka_sasl_username
        ):
            raise ValueError(
                "kafka_security_protocol SASL_* needs BYFLYT_KAFKA_SASL_MECHANISM and "
                "BYFLYT_KAFKA_SASL_USERNAME (and _PASSWORD)"
            )
        if self.kafka_ssl_cafile is not None and not self.kafka_ssl_cafile.is_file():
            raise ValueError(f"kafka_ssl_cafile {self.kafka_ssl_cafile} is not a readable file")
        return self

    def point_thresholds(self, source: str) -> PointThresholds:
        """The counter status thresholds of ``source`` (defaults plus its overrides)."""
        overrides = self.status_by_source.get(source)
        if not overrides:
            return self.point_status
        return PointThresholds.model_validate({**self.point_status.model_dump(), **overrides})

    def feed_thresholds(self, source: str) -> FeedThresholds:
        """The feed status thresholds of ``source`` (defaults plus its overrides)."""
        overrides = self.status_by_source.get(source)
        if not overrides:
            return self.feed_status
        return FeedThresholds.model_validate({**self.feed_status.model_dump(), **overrides})

    @property
    def uses_local_broker(self) -> bool:
        """True when no external Kafka is configured and byflyt runs its own."""
        return self.kafka_bootstrap is None

    @property
    def bootstrap_servers(self) -> str:
        """The bootstrap servers clients connect to."""
        return self.kafka_bootstrap or f"127.0.0.1:{self.broker_port}"

    @property
    def kafka_libs_dir(self) -> Path:
        """Where ``make install`` put the Kafka jars."""
        return self.kafka_libs or self.data_dir / "kafka" / "libs"

    @property
    def broker_dir(self) -> Path:
        """State of the local broker: properties, KRaft log dirs, pid file, log."""
        return self.data_dir / "broker"

    @property
    def database_url(self) -> str:
        """The store's SQLAlchemy URL."""
        return self.store_url or f"sqlite:///{self.data_dir / 'byflyt.sqlite'}"

    def topic(self, name: str) -> str:
        """A topic name with the configured prefix."""
        return f"{self.topic_prefix}{name}"


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning a validation error into one :class:`ConfigError` line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        setting = f"BYFLYT_{field.upper()}" if err["loc"] else "BYFLYT_* settings"
        message = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(setting, message, _fix_for(err)) from exc


def _fix_for(err: ErrorDetails) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "literal_error":
        return f"use one of {ctx.get('expected', 'the allowed values')}"
    if kind in ("int_parsing", "greater_than_equal", "less_than_equal"):
        return "give a whole number in the allowed range"
    if kind == "string_pattern_mismatch":
        return f"use only characters matching {ctx.get('pattern')}"
    return "correct the value in the environment or .env"
