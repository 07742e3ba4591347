"""SIRI ET parsing: peak memory and journeys/s on a ~100 MB answer, against bare lxml iterparse.

1. Write one synthetic ET answer of ``target_mb`` (the synthetic day's journeys repeated) to a
   file, streaming, and the synthetic static feed the journeys refer to.
2. (a) Baseline, in a child process: ``lxml.etree.iterparse`` over the file, clearing each
   ``EstimatedVehicleJourney`` and its finished siblings; journeys/s and peak RSS.
3. (b) byflyt, in a child process: the connector's streaming parser fed 64 KiB chunks, every
   journey turned into a trip record on the static feed and encoded (then dropped, as once
   produced); journeys/s and peak RSS. The live connector also keeps one page's records
   until they are produced, which Entur's paging (``MoreData``) bounds.
4. Write both, and (b)/(a), to ``bench/results/siri.json``. Peak RSS must stay under 200 MB.

Time is the child's CPU time, and (a) and (b) run :data:`ROUNDS` times each, taking turns, the
best round of each counting: on a machine shared with other work, wall-clock times of two runs
taken seconds apart swung the ratio between 0.17 and 0.48 for the same code.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lxml import etree

from bench.child import peak_mb, run_child
from bench.table import Row, row
from byflyt.connectors.siri import CHUNK_BYTES, SiriConnector
from byflyt.connectors.siri_elements import AnswerInfo, SiriJourney
from byflyt.connectors.siri_xml import parse_answer
from byflyt.connectors.snapshots import settle_heap
from byflyt.models import codec_trips
from byflyt.models.geo import KommuneLocator
from byflyt.models.gtfs import StaticFeed, load_gtfs
from byflyt.samples.gtfs import write_synthetic_gtfs
from byflyt.samples.siri import synthetic_day, write_big_et_answer
from byflyt.settings import Settings, load_settings

LIMIT_MB = 200.0
ROUNDS = 3


def _baseline(answer: Path) -> dict[str, Any]:
    tag = "{http://www.siri.org.uk/siri}EstimatedVehicleJourney"
    started = time.process_time()
    count = 0
    for _, element in etree.iterparse(str(answer), events=("end",), tag=tag):
        count += 1
        element.clear(keep_tail=False)
        while element.getprevious() is not None:
            del element.getparent()[0]
    return {"journeys": count, "seconds": time.process_time() - started}


def _chunks(answer: Path) -> Any:
    with answer.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk


def _byflyt(answer: Path, static_dir: Path) -> dict[str, Any]:
    static = StaticFeed.load(static_dir)
    connector = SiriConnector(
        Settings(), kind="et", dataset="INN", static=static, endpoint="http://127.0.0.1:9"
    )
    settle_heap()  # as the snapshot runner does before its first poll
    started = time.process_time()
    count, states, produced = 0, 0, 0
    info = AnswerInfo()
    for element in parse_answer(_chunks(answer), info):
        assert isinstance(element, SiriJourney)
        count += 1
        state = connector.journeys.trip_state(element, info.response_at or datetime.now(UTC))
        produced += len(codec_trips.encode(state))
        states += 1
    seconds = time.process_time() - started
    connector.close()
    return {"journeys": count, "trip_states": states, "json_bytes": produced, "seconds": seconds}


def _child(mode: str, answer: Path, static_dir: Path) -> dict[str, Any]:
    return run_child("bench.siri", mode, str(answer), str(static_dir))


def run(out: Path, target_mb: float = 100.0) -> dict[str, Any]:
    """Run the whole benchmark; return and write the figures."""
    settings = load_settings()
    geojson = settings.kommuner_geojson  # None: the shipped boundaries
    with tempfile.TemporaryDirectory(prefix="byflyt-bench-siri-") as tmp:
        work = Path(tmp)
        static_zip = write_synthetic_gtfs(work / "inn.zip")
        static = load_gtfs(
            static_zip, feed="inn", region=None, locator=KommuneLocator.from_file(geojson)
        )
        static_dir = static.save(work / "static")
        answer = work / "et.xml"
        journeys = write_big_et_answer(
            answer, int(target_mb * 1024 * 1024), synthetic_day(static_zip)
        )
        size_mb = answer.stat().st_size / 1024 / 1024
        rounds = [
            (_child("baseline", answer, static_dir), _child("byflyt", answer, static_dir))
            for _ in range(ROUNDS)
        ]
    base = min((b for b, _ in rounds), key=lambda r: r["seconds"])
    ours = min((o for _, o in rounds), key=lambda r: r["seconds"])
    figures = {
        "benchmark": "SIRI ET streaming parse vs bare lxml iterparse (synthetic answer)",
        "measured_at": datetime.now(UTC).isoformat(),
        "time": f"CPU seconds of a child, best of {ROUNDS} rounds taking turns",
        "baseline_cpu_seconds": [round(b["seconds"], 3) for b, _ in rounds],
        "byflyt_cpu_seconds": [round(o["seconds"], 3) for _, o in rounds],
        "answer_mb": round(size_mb, 1),
        "journeys": journeys,
        "baseline_journeys_per_s": round(base["journeys"] / base["seconds"]),
        "baseline_peak_rss_mb": round(base["peak_rss_mb"], 1),
        "baseline_rss_before_parse_mb": round(base["rss_before_parse_mb"], 1),
        "byflyt_journeys_per_s": round(ours["journeys"] / ours["seconds"]),
        "byflyt_trip_states": ours["trip_states"],
        "byflyt_peak_rss_mb": round(max(o["peak_rss_mb"] for _, o in rounds), 1),
        "byflyt_rss_before_parse_mb": round(ours["rss_before_parse_mb"], 1),
        "byflyt_to_baseline_ratio": round(base["seconds"] / ours["seconds"], 4),
        "peak_rss_limit_mb": LIMIT_MB,
        "within_limit": max(o["peak_rss_mb"] for _, o in rounds) < LIMIT_MB,
        "cpu_count": os.cpu_count(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def rows(figures: dict[str, Any]) -> list[Row]:
    """This benchmark's row of the one table (:mod:`bench.table`)."""
    ratio, rss = figures["byflyt_to_baseline_ratio"], figures["byflyt_peak_rss_mb"]
    return [
        row(
            f"SIRI ET {figures['answer_mb']} MB answer ({figures['journeys']:,} journeys)",
            byflyt=f"{figures['byflyt_journeys_per_s']:,} journeys/CPU-s, peak RSS {rss} MB",
            baseline=f"iterparse {figures['baseline_journeys_per_s']:,} journeys/CPU-s",
            ratio=f"{ratio}",
            goal="≥ 0.4, RSS < 200 MB",
            met=ratio >= 0.4 and rss < LIMIT_MB,
        )
    ]


def main() -> None:
    """Child entry: ``python -m bench.siri baseline|byflyt ANSWER STATIC_DIR``."""
    mode, answer, static_dir = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    before = peak_mb()  # after the imports (pandas, lxml, pydantic): what parsing adds is on top
    result = _baseline(answer) if mode == "baseline" else _byflyt(answer, static_dir)
    result["peak_rss_mb"] = peak_mb()
    result["rss_before_parse_mb"] = before
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
