"""Session fixtures: a real Kafka broker the session starts, and factories for isolated tests.

The broker is a real single-node KRaft Kafka from the Maven-resolved jars (``make install``),
started on a free port in a temporary folder, or the Kafka named by ``BYFLYT_KAFKA_BOOTSTRAP``.
Every test gets its own topic prefix and app id, so tests never see each other's records.
"""

from __future__ import annotations

import gzip
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest

from byflyt.broker import LocalBroker
from byflyt.models.geo import BUNDLED_BOUNDARIES
from byflyt.settings import Settings

REPO = Path(__file__).resolve().parent.parent


pytest_plugins = ["tests.pg"]


@dataclass(frozen=True)
class Broker:
    """The session's Kafka."""

    bootstrap: str


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kafka_libs() -> Path:
    """Where ``make install`` put the Kafka jars."""
    data_dir = Path(os.environ.get("BYFLYT_DATA_DIR", REPO / ".byflyt"))
    return data_dir / "kafka" / "libs"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    external = os.environ.get("BYFLYT_KAFKA_BOOTSTRAP")
    if external:
        yield Broker(external)
        return
    port = free_port()
    local = LocalBroker(tmp_path_factory.mktemp("broker"), kafka_libs(), port)
    local.start()
    try:
        yield Broker(f"127.0.0.1:{port}")
    finally:
        local.stop()


@pytest.fixture(scope="session")
def geojson_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped kommune boundaries written out as a plain GeoJSON file (for the setting)."""
    raw = resources.files("byflyt.models").joinpath(BUNDLED_BOUNDARIES).read_bytes()
    path = tmp_path_factory.mktemp("boundaries") / "kommuner.geojson"
    path.write_bytes(gzip.decompress(raw))
    return path


@pytest.fixture
def unique() -> str:
    """A short unique token for topic prefixes, group ids and app ids."""
    return uuid.uuid4().hex[:10]


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def settings_factory(broker: Broker, tmp_path: Path, unique: str) -> SettingsFactory:
    """Settings for this test: the session broker, a private prefix, app id and data dir."""

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "kafka_bootstrap": broker.bootstrap,
            "data_dir": tmp_path / "data",
            "topic_prefix": f"t{unique}.",
            "app_id": f"byflyt-test-{unique}",
            "topic_partitions": 2,
            "kafka_libs": kafka_libs(),
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def settings(settings_factory: SettingsFactory) -> Settings:
    """Default test settings (SQLite store under the test's tmp dir)."""
    return settings_factory()


@pytest.fixture
def topic_factory(settings: Settings, unique: str) -> Callable[[str], str]:
    """Unique topic names for ad-hoc topics."""
    counter = iter(range(1_000_000))

    def make(name: str) -> str:
        return f"t{unique}.{name}.{next(counter)}"

    return make


@pytest.fixture
def worker_env(settings: Settings) -> dict[str, str]:
    """Environment for a ``byflyt`` subprocess that uses this test's settings."""
    env = dict(os.environ)
    for key, value in settings.model_dump(exclude_none=True).items():
        if isinstance(value, (str, int, float, Path)):
            env[f"BYFLYT_{key.upper()}"] = str(value)
    env["BYFLYT_STORE_URL"] = settings.database_url
    return env
