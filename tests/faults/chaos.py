"""``make chaos``: random, bounded fault schedules over the fault tests' workload.

Each schedule starts two workers in one group on a private broker with a private PostgreSQL
store, feeds the synthetic workload in batches, and meanwhile fires a few random faults: a
worker killed with SIGKILL (and started again), a worker paused with SIGSTOP (and continued), the
broker stopped and started again, the database stopped and started again. Then the running
workers must bring the store and ``volumes.hourly`` to the ground truth within a bounded time.

Prints ``schedules N, lost 0, doubled 0`` when every schedule was exact; otherwise the first
schedule that broke, what it did, and the seed that replays it; exits 1 then.
Usage: ``python -m tests.faults.chaos --schedules N [--seed S] [--faults kill,pause,broker,db]``.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaProducer

from byflyt.connectors.checkpoints import send_and_wait
from byflyt.errors import BrokerError
from byflyt.kafka import create_topics
from byflyt.kafka import producer as kafka_producer
from byflyt.settings import Settings
from tests.cycling_expect import Row, expected_rows
from tests.faults.harness import (
    PrivateBroker,
    PrivatePostgres,
    Proc,
    Run,
    compare,
    kafka_libs,
    new_folder,
    observations,
    store_rows,
    topic_rows,
)
from tests.helpers import wait_until

FAULTS = ("kill", "pause", "broker", "db")
WORKERS = 2
EVENTS = (2, 4)  # faults per schedule, inclusive
SPAN_S = 20.0  # faults start within this many seconds of the schedule's start
CONVERGE_S = 150.0
PRODUCE_DEADLINE_S = 300.0  # the workload gives up when the broker stays away this long


@dataclass(frozen=True)
class Event:
    """One fault: what, when (seconds after the start), on which worker, for how long."""

    at: float
    kind: str
    worker: int
    seconds: float

    def describe(self) -> str:
        """E.g. ``t+4.2s pause worker-1 for 3.0s``."""
        what = {
            "kill": f"kill -9 worker-{self.worker}, restart after",
            "pause": f"pause worker-{self.worker}",
            "broker": "stop the broker",
            "db": "stop the database",
        }[self.kind]
        return f"t+{self.at:.1f}s {what} for {self.seconds:.1f}s"


def plan(seed: int, kinds: tuple[str, ...]) -> list[Event]:
    """The schedule of ``seed``: 2–4 faults at random times, each bounded."""
    rng = random.Random(seed)
    events = []
    for _ in range(rng.randint(*EVENTS)):
        kind = rng.choice(kinds)
        seconds = {"kill": rng.uniform(0.5, 3), "pause": rng.uniform(1, 8)}.get(
            kind, rng.uniform(3, 12)
        )
        events.append(Event(rng.uniform(0, SPAN_S), kind, rng.randrange(WORKERS) + 1, seconds))
    return sorted(events, key=lambda e: e.at)


class Schedule:
    """One schedule's run: its settings, workers and the faults it fires."""

    def __init__(
        self, seed: int, broker: PrivateBroker, pg: PrivatePostgres | None, folder: Path
    ) -> None:
        self.seed = seed
        self.broker = broker
        self.pg = pg
        token = uuid.uuid4().hex[:10]
        self.database = f"byflyt_chaos_{token}"
        store_url = pg.server.create_database(self.database) if pg else None
        settings = Settings(
            kafka_bootstrap=broker.bootstrap,
            data_dir=folder / "data",
            topic_prefix=f"c{token}.",
            app_id=f"byflyt-chaos-{token}",
            topic_partitions=4,
            kafka_libs=kafka_libs(),
            store_url=store_url,
        )
        create_topics(settings)
        self.run = Run(settings, folder)
        self.workers: dict[int, Proc] = {}
        self.lock = threading.Lock()

    def start_worker(self, n: int) -> None:
        """Start (or start again) worker ``n``."""
        with self.lock:
            self.workers[n] = self.run.worker(f"worker-{n}")

    def fire(self, event: Event) -> None:
        """Fire one fault and undo it after its duration (runs on its own thread)."""
        if event.kind == "kill":
            self.workers[event.worker].signal(signal.SIGKILL)
            self.workers[event.worker].popen.wait(30)
            time.sleep(event.seconds)
            self.start_worker(event.worker)
        elif event.kind == "pause":
            self.workers[event.worker].signal(signal.SIGSTOP)
            time.sleep(event.seconds)
            self.workers[event.worker].signal(signal.SIGCONT)
        elif event.kind == "broker":
            with _broker_lock:
                self.broker.stop()
                time.sleep(event.seconds)
                self.broker.start()
        elif event.kind == "db" and self.pg is not None:
            with _db_lock:
                self.pg.halt()
                time.sleep(event.seconds)
                self.pg.resume()

    def execute(self, events: list[Event]) -> str | None:
        """Run the workload under ``events``; None when exact, else what went wrong."""
        workload = observations(hours=48, seed=self.seed)
        truth = expected_rows(workload)
        for n in range(1, WORKERS + 1):
            self.start_worker(n)
        threads = []
        for event in events:
            timer = threading.Timer(event.at, self.fire, args=(event,))
            timer.start()
            threads.append(timer)
        # One producer for the whole feed: it rides out a broker restart, as a connector does.
        producer = kafka_producer(self.run.settings)
        try:
            for i in range(0, len(workload), 40):
                chunk = [
                    (self.run.settings.topic("bike.counts"), o.key.encode(), o.to_bytes())
                    for o in workload[i : i + 40]
                ]
                _send_riding_out(producer, chunk)
                time.sleep(0.5)
        finally:
            producer.close()
            for thread in threads:  # every fault undone before anything is judged or torn down
                thread.join()
        try:
            got = wait_until(
                lambda: _safe(lambda: store_rows(self.run.settings)) or [],
                CONVERGE_S,
                "the store to converge",
                until=lambda rows: rows == truth,
                every=1,
            )
        except AssertionError:  # not converged: the verdict below says how far off it is
            got = _safe(lambda: store_rows(self.run.settings)) or []
        verdict = compare(got, truth, "store")
        if verdict.exact:
            verdict = compare(topic_rows(self.run.settings), truth, "volumes.hourly")
        return None if verdict.exact else verdict.detail

    def close(self) -> None:
        """Stop the workers and drop the schedule's database."""
        self.run.close()
        if self.pg is not None:
            self.pg.server.drop_database(self.database)


def _send_riding_out(producer: KafkaProducer, chunk: list[tuple[str, bytes, bytes]]) -> None:
    """Send ``chunk`` until the broker acknowledges it, as a connector does.

    Back-to-back broker stops (each waiting for the previous restart) can keep the broker away
    longer than one send's timeout; a chunk not acknowledged is sent again (a repeat replaces,
    so the workload's truth is unchanged). Gives up after :data:`PRODUCE_DEADLINE_S`.
    """
    deadline = time.monotonic() + PRODUCE_DEADLINE_S
    while True:
        try:
            send_and_wait(producer, chunk, timeout=60)
            return
        except BrokerError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


_broker_lock = threading.Lock()
_db_lock = threading.Lock()


def _safe(read: Callable[[], list[Row]]) -> list[Row] | None:
    try:
        return read()
    except Exception:  # the store may be down right now; try again on the next tick
        return None


def main(argv: list[str] | None = None) -> int:
    """Run the schedules; print the one-line verdict; 0 when every schedule was exact."""
    parser = argparse.ArgumentParser(prog="python -m tests.faults.chaos", description=__doc__)
    parser.add_argument("--schedules", type=int, default=5)
    parser.add_argument("--seed", type=int, default=None, help="first schedule's seed")
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated subset")
    args = parser.parse_args(argv)
    kinds = tuple(k for k in args.faults.split(",") if k)
    unknown = set(kinds) - set(FAULTS)
    if unknown or not kinds or args.schedules < 1:
        parser.error(f"--faults takes {','.join(FAULTS)}; --schedules at least 1")
    first = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    root = new_folder("byflyt-chaos-")
    print(f"chaos: {args.schedules} schedules from seed {first}; logs in {root}", flush=True)
    broker = PrivateBroker(root / "broker")
    broker.start()
    pg = PrivatePostgres() if "db" in kinds else None
    if pg is not None:
        pg.start()
    try:
        for k in range(args.schedules):
            seed = first + k
            events = plan(seed, kinds)
            folder = root / f"schedule-{seed}"
            folder.mkdir()
            print(
                f"schedule {k + 1} (seed {seed}): " + "; ".join(e.describe() for e in events),
                flush=True,
            )
            schedule = Schedule(seed, broker, pg, folder)
            began = time.monotonic()
            try:
                broke = schedule.execute(events)
            except Exception as exc:  # the harness itself failed: report it, with the seed
                broke = f"the schedule could not run: {type(exc).__name__}: {exc}"
            finally:
                schedule.close()
            if broke:
                print(
                    f"schedule {k + 1} broke (seed {seed}): {broke}\n"
                    f"replay: make chaos SCHEDULES=1 SEED={seed}  (logs: {folder})",
                    flush=True,
                )
                return 1
            print(f"  exact in {time.monotonic() - began:.0f}s", flush=True)
    finally:
        broker.stop()
        if pg is not None:
            pg.stop()
    shutil.rmtree(root, ignore_errors=True)
    print(f"schedules {args.schedules}, lost 0, doubled 0", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
