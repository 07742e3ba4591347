"""byflyt's configuration: one frozen settings object, read once at the edge.

Every value comes from a ``BYFLYT_``-prefixed environment variable or a ``.env`` file. Nothing
below the command line reads ``os.environ``; code receives a :class:`Settings` instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from byflyt.errors import ConfigError

DEFAULT_BROKER_PORT = 9092
_HOSTPORT = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")
_STORE_SCHEMES = ("sqlite", "postgresql")


def _default_data_dir() -> Path:
    # Like .venv: a checkout keeps its jars, broker and store beside it; deployments set the path.
    return Path.cwd() / ".byflyt"


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
    region: str | None = Field(default=None, description="Default region, e.g. mjosbyen.")
    client_name: str = Field(
        default="byflyt-dev", description="Sent as x-client / ET-Client-Name to the sources."
    )
    kommuner_geojson: Path | None = Field(
        default=None, description="Kommune boundaries (GeoJSON, Kartverket CC BY 4.0)."
    )
    regions_file: Path | None = Field(
        default=None, description="Extra or overriding region definitions (JSON)."
    )
    hour_retention_days: int = Field(default=60, ge=1, le=3650)

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
