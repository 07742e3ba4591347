"""``python -m bench [N]``: run the benchmarks and write their figures to ``bench/results/``.

``python -m bench siri``, ``python -m bench gtfs-rt`` and ``python -m bench connectors`` (both) run
the connector benchmarks, which need no broker, and print their rows of the table.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from bench import cycling, gtfs_rt, siri
from byflyt.broker import LocalBroker
from byflyt.settings import load_settings

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    """Start a private broker, run each benchmark, print and write the figures."""
    if sys.argv[1:2] in (["siri"], ["gtfs-rt"], ["connectors"]):  # no broker needed
        table: list[tuple[str, ...]] = []
        if sys.argv[1] in ("gtfs-rt", "connectors"):
            table += gtfs_rt.rows(gtfs_rt.run(RESULTS / "gtfs_rt.json"))
        if sys.argv[1] in ("siri", "connectors"):
            table += siri.rows(siri.run(RESULTS / "siri.json"))
        sys.stdout.write(_table(table))
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
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
            figures = cycling.run(settings, n, RESULTS / "cycling.json")
            figures["siri"] = siri.run(RESULTS / "siri.json")
            figures["gtfs_rt"] = gtfs_rt.run(RESULTS / "gtfs_rt.json")
        finally:
            broker.stop()
    sys.stdout.write(json.dumps(figures, indent=2) + "\n")


def _table(rows: list[tuple[str, ...]]) -> str:
    header = ("benchmark", "byflyt", "baseline", "ratio", "goal", "met?")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    main()
