"""``python -m bench [N]``: run the benchmarks and write their figures to ``bench/results/``.

Prints one table (benchmark, byflyt, baseline, ratio, goal, met?) and writes every figure as JSON.
The cycling benchmark runs into SQLite and into a throw-away PostgreSQL cluster (the test
suite's, ``tests/pg.py``) when PostgreSQL's server binaries are installed.

``python -m bench siri``, ``python -m bench gtfs-rt`` and ``python -m bench connectors`` (both) run
the connector benchmarks, which need no broker, and print their rows of the table.
``python -m bench load`` runs the load benchmark alone (200 API clients for 60 s against
``byflyt serve`` while a worker ingests 1,000 observations/s) and prints its rows.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import cycling, freshness, gtfs_rt, load, siri
from bench.table import Row, lines
from byflyt.broker import LocalBroker
from byflyt.settings import load_settings

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    """Start a private broker, run each benchmark, print and write the figures."""
    if sys.argv[1:2] in (["siri"], ["gtfs-rt"], ["connectors"]):  # no broker needed
        rows: list[Row] = []
        if sys.argv[1] in ("gtfs-rt", "connectors"):
            rows += gtfs_rt.rows(gtfs_rt.run(RESULTS / "gtfs_rt.json"))
        if sys.argv[1] in ("siri", "connectors"):
            rows += siri.rows(siri.run(RESULTS / "siri.json"))
        sys.stdout.write(lines(rows))
        return
    only_load = sys.argv[1:2] == ["load"]
    n = int(sys.argv[1]) if len(sys.argv) > 1 and not only_load else 1_000_000
    base = load_settings()
    with tempfile.TemporaryDirectory(prefix="byflyt-bench-") as tmp:
        work = Path(tmp)
        broker = LocalBroker(work / "broker", base.kafka_libs_dir, _free_port())
        broker.start()
        try:
            settings = load_settings(
                kafka_bootstrap=f"127.0.0.1:{broker.port}",
                data_dir=work / "data",
                topic_prefix=f"bench{int(time.time())}.",
                app_id="byflyt-bench",
            )
            if only_load:
                figures = load.run(settings, RESULTS / "load.json")
                sys.stdout.write(lines(load.rows(figures)))
                return
            with _postgres() as pg_url:
                stores = {"sqlite": settings.database_url}
                if pg_url is not None:
                    stores["postgresql"] = pg_url
                figures = cycling.run(settings, n, RESULTS / "cycling.json", stores)
            figures["freshness"] = freshness.run(settings, RESULTS / "freshness.json")
            figures["load"] = load.run(settings, RESULTS / "load.json")
            figures["siri"] = siri.run(RESULTS / "siri.json")
            figures["gtfs_rt"] = gtfs_rt.run(RESULTS / "gtfs_rt.json")
        finally:
            broker.stop()
    (RESULTS / "all.json").write_text(json.dumps(figures, indent=2) + "\n")
    sys.stdout.write(table(figures))


@contextmanager
def _postgres() -> Iterator[str | None]:
    """A throw-away PostgreSQL database, or None when no server binaries are installed."""
    try:
        from tests.pg import LocalPostgres, pg_bin_dir

        bin_dir = pg_bin_dir()
    except BaseException:  # noqa: BLE001 - pytest.fail raises a BaseException: no PostgreSQL
        yield None
        return
    cluster = LocalPostgres(bin_dir)
    try:
        server = cluster.start()
        yield server.create_database("byflyt_bench")
    finally:
        cluster.stop()


def table(figures: dict[str, Any]) -> str:
    """The one table of a run: benchmark, byflyt, baseline, ratio, goal, met?."""
    rows: list[Row] = []
    n = figures["n_observations"]
    bare = figures["bare_consumer_events_per_s"]
    for name, goal in (("sqlite", 0.25), ("postgresql", 0.15)):
        store = figures.get(name)
        if store is None:
            rows.append((f"cycling → {name}, N={n:,}", "not run", "", "", f"≥ {goal}", "—"))
            continue
        ratio = store["agent_to_bare_ratio"]
        rss = store["worker_peak_rss_mb"]
        ours = f"{store['agent_events_per_s_steady']:,} ev/s"
        if name == "sqlite":
            ours += f", RSS {rss} MB"
        ours += f" (start-up {store['worker_startup_seconds']} s apart)"
        met = ratio >= goal and (name != "sqlite" or (rss is not None and rss <= 400))
        goal_text = f"≥ {goal}" + (", RSS ≤ 400 MB" if name == "sqlite" else "")
        rows.append(
            (
                f"cycling → {name}, N={n:,}",
                ours,
                f"aiokafka {bare:,} ev/s",
                f"{ratio}",
                goal_text,
                "yes" if met else "no",
            )
        )
    rows += gtfs_rt.rows(figures["gtfs_rt"])
    rows += siri.rows(figures["siri"])
    fresh = figures["freshness"]
    label = f"freshness {fresh['rate_per_s']:,} obs/s × {fresh['seconds']} s, produce → store row"
    rows.append(freshness.row(label, fresh))
    rows += load.rows(figures["load"])
    return lines(rows)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    main()
