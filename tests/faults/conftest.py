"""Fixtures of the fault tests: a private broker and PostgreSQL, and one ``Run`` per test.

The broker and PostgreSQL here are the fault tests' own (started once for the package), so a
test may stop them without disturbing the rest of the session.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from byflyt.kafka import create_topics
from byflyt.settings import Settings
from tests.faults.harness import PrivateBroker, PrivatePostgres, Run, kafka_libs


@pytest.fixture(scope="package")
def fault_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    """A broker of the fault tests alone; a test may stop and restart it."""
    broker = PrivateBroker(tmp_path_factory.mktemp("fault-broker"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="package")
def fault_pg() -> Iterator[PrivatePostgres]:
    """A PostgreSQL of the fault tests alone; a test may stop and start it."""
    pg = PrivatePostgres()
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()


RunFactory = Callable[..., Run]


@pytest.fixture
def fault_run(fault_broker: PrivateBroker, tmp_path: Path) -> Iterator[RunFactory]:
    """Make the test's ``Run``: private topics and group on the fault broker, topics created."""
    runs: list[Run] = []

    def make(partitions: int = 2, store_url: str | None = None) -> Run:
        token = uuid.uuid4().hex[:10]
        settings = Settings(
            kafka_bootstrap=fault_broker.bootstrap,
            data_dir=tmp_path / "data",
            topic_prefix=f"f{token}.",
            app_id=f"byflyt-fault-{token}",
            topic_partitions=partitions,
            kafka_libs=kafka_libs(),
            store_url=store_url,
        )
        create_topics(settings)
        run = Run(settings, tmp_path)
        runs.append(run)
        return run

    try:
        yield make
    finally:
        for run in runs:
            run.close()


@pytest.fixture
def pg_database(fault_pg: PrivatePostgres) -> Iterator[str]:
    """A fresh database on the fault tests' PostgreSQL."""
    with fault_pg.server.fresh_database("byflyt_f_") as url:
        yield url
