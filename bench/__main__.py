"""``python -m bench [N]``: run the benchmarks and write their figures to ``bench/results/``.

``python -m bench siri`` and ``python -m bench gtfs-rt`` run one benchmark that needs no broker.
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
    if sys.argv[1:2] == ["siri"]:  # no broker needed
        figures = siri.run(RESULTS / "siri.json")
        sys.stdout.write(json.dumps(figures, indent=2) + "\n")
        return
    if sys.argv[1:2] == ["gtfs-rt"]:  # no broker needed
        figures = gtfs_rt.run(RESULTS / "gtfs_rt.json")
        sys.stdout.write(json.dumps(figures, indent=2) + "\n")
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


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    main()
