"""A real PostgreSQL for the test session (a pytest plugin that conftest loads).

``pg_url`` starts a throw-away server the first time a test asks for it: ``initdb`` into a
temporary folder, ``pg_ctl start`` on a free port on 127.0.0.1 (its unix socket in the same
folder, so it never meets a system server), a database for the session; ``pg_ctl stop -m fast``
and the folder removed at the end. PostgreSQL refuses to run as root, so under root the server
runs as the ``postgres`` OS user, which owns the folder. The binaries come from Debian's
``postgresql`` package (``make install``); without them the tests fail, they never skip.

``pg_store_url`` gives each test its own fresh database on that server, dropped afterwards.

Set ``BYFLYT_TEST_PG_URL`` (``postgresql+psycopg://user:pass@host:port/db``, a role allowed to
create databases) to use an external PostgreSQL instead.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from tests.helpers import free_port

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
PG_OS_USER = "postgres"
SESSION_DB = "byflyt_session"


@dataclass(frozen=True)
class PgServer:
    """A PostgreSQL server the tests may create databases on."""

    url: str  # SQLAlchemy URL of a database on the server, as a role that may CREATE DATABASE

    def url_for(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` on this server."""
        return make_url(self.url).set(database=database).render_as_string(hide_password=False)

    def _admin(self) -> psycopg.Connection:
        parsed = make_url(self.url)
        return psycopg.connect(
            host=parsed.host,
            port=parsed.port,
            user=parsed.username,
            password=parsed.password,
            dbname=parsed.database,
            autocommit=True,
        )

    def create_database(self, name: str) -> str:
        """Create database ``name``; return its URL."""
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    @contextmanager
    def fresh_database(self, prefix: str) -> Iterator[str]:
        """A new database (``prefix`` and a random suffix), dropped on leaving; its URL."""
        name = f"{prefix}{uuid.uuid4().hex[:12]}"
        url = self.create_database(name)
        try:
            yield url
        finally:
            self.drop_database(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, disconnecting whoever is still connected to it."""
        with self._admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def pg_bin_dir() -> Path:
    """The newest installed PostgreSQL server's bin folder; fails the test when there is none."""
    found = [Path(p) for p in glob.glob(PG_BIN_GLOB) if (Path(p) / "initdb").is_file()]
    if not found:
        pytest.fail(
            f"PostgreSQL server binaries not found ({PG_BIN_GLOB}/initdb): run `make install` "
            "(it installs Debian's postgresql package), or set BYFLYT_TEST_PG_URL",
            pytrace=False,
        )
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


class LocalPostgres:
    """A PostgreSQL cluster in a temporary folder, run by the postgres user when we are root."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.as_root = os.geteuid() == 0
        self.folder = Path(tempfile.mkdtemp(prefix="byflyt-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.port = free_port()
        if self.as_root:
            try:
                user = pwd.getpwnam(PG_OS_USER)
            except KeyError:
                pytest.fail(
                    f"running as root, but there is no {PG_OS_USER!r} OS user to run PostgreSQL: "
                    "run `make install` (Debian's postgresql package creates it)",
                    pytrace=False,
                )
            os.chown(self.folder, user.pw_uid, user.pw_gid)

    def _run(self, tool: str, *args: str) -> None:
        argv = [str(self.bin_dir / tool), *args]
        if self.as_root:
            argv = ["runuser", "-u", PG_OS_USER, "--", *argv]
        done = subprocess.run(
            argv,
            cwd=self.folder,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            pytest.fail(
                f"{tool} {' '.join(args)} failed ({done.returncode}):\n{done.stdout}"
                f"{done.stderr}\n{log}",
                pytrace=False,
            )

    def start(self) -> PgServer:
        """initdb, start, and return the server (user ``postgres``, trust auth on 127.0.0.1)."""
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )
        self.resume()
        return PgServer(f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres")

    def halt(self) -> None:
        """Stop the server (fast: open connections are cut), keeping its data."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        """Start the (initialised) server, again on the same port after a :meth:`halt`."""
        # Durability settings off: a test cluster is thrown away, and they make it fast.
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.folder} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        try:
            if (self.data / "postmaster.pid").exists():
                self.halt()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's PostgreSQL server (started on first use)."""
    external = os.environ.get("BYFLYT_TEST_PG_URL")
    if external:
        yield PgServer(external)
        return
    local = LocalPostgres(pg_bin_dir())
    try:
        yield local.start()
    finally:
        local.stop()


@pytest.fixture(scope="session")
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A ``postgresql+psycopg://`` URL of a database shared by the whole session."""
    with pg_server.fresh_database(f"{SESSION_DB}_") as url:
        yield url


@pytest.fixture
def pg_store_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database for this test alone; dropped afterwards."""
    with pg_server.fresh_database("byflyt_t_") as url:
        yield url
