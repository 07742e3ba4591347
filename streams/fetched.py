"""Fetched windows: ``bike.fetched`` → the store's ``fetched_windows``.

Every counter connector says, per point, which hours ``[since, until)`` it asked its source for
(:class:`~byflyt.models.counts.FetchedWindow`, keyed ``source:point_id``). ``store_fetched``
writes them to the store, where each point's windows are kept merged; the report and the sensor
status read them, so a point is judged only over the hours its source was asked for and a gap
between fetched windows is "not ingested", never an outage. Records that do not parse go to
``dlq.rejected``; input is acknowledged only after its windows are stored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import faust
from pydantic import ValidationError

from byflyt.metrics import Metrics, default_metrics
from byflyt.models.counts import FetchedWindow
from byflyt.models.envelope import Rejected
from byflyt.settings import Settings
from byflyt.store import Store
from byflyt.streams.app import topic
from byflyt.streams.cycling import BATCH_MAX, FLUSH_INTERVAL_S, manual_acks, reason_of
from byflyt.topics import COUNTS_FETCHED, DLQ

AGENT = "store_fetched"


@dataclass
class _Pending:
    events: list[faust.EventT] = field(default_factory=list)
    windows: list[FetchedWindow] = field(default_factory=list)
    since: float = field(default_factory=time.monotonic)


class FetchedSink:
    """Batches fetched windows and writes them to the store, then acks their events."""

    def __init__(self, store: Store, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics
        self.pending = _Pending()
        self.lock = asyncio.Lock()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="byflyt-fetched")

    def due(self) -> bool:
        """Whether the pending batch should be written now."""
        size = len(self.pending.events)
        return size >= BATCH_MAX or (
            size > 0 and time.monotonic() - self.pending.since >= FLUSH_INTERVAL_S
        )

    async def flush(self) -> None:
        """Store the pending windows, then acknowledge the events they came from."""
        async with self.lock:
            pending, self.pending = self.pending, _Pending()
            if not pending.events:
                return
            started = time.perf_counter()
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self.executor, self.store.add_fetched, pending.windows)
            for event in pending.events:
                event.ack()
            self.metrics.agent_records.labels(AGENT, "out").inc(len(pending.windows))
            self.metrics.processing_seconds.labels(AGENT).observe(time.perf_counter() - started)


def register(app: faust.App, settings: Settings) -> Callable[[], Awaitable[None]]:
    """Add the fetched-windows agent to ``app``; return the flush the drain calls."""
    metrics = default_metrics()
    sink = FetchedSink(Store.from_settings(settings, metrics=metrics), metrics)
    fetched = topic(app, settings, COUNTS_FETCHED)
    dlq = topic(app, settings, DLQ)

    @app.agent(fetched, name=AGENT)
    async def store_fetched(stream: faust.StreamT[bytes]) -> None:
        async for event in manual_acks(stream).events():
            metrics.agent_records.labels(AGENT, "in").inc()
            try:
                window = FetchedWindow.from_bytes(event.value)
            except (ValidationError, ValueError) as exc:
                name = COUNTS_FETCHED.name
                rejected = Rejected.of(name, "invalid_record", reason_of(exc), AGENT, event.value)
                metrics.rejected.labels(name, AGENT, "invalid_record").inc()
                await dlq.send(key=name.encode(), value=rejected.to_bytes())
                event.ack()
                continue
            sink.pending.windows.append(window)
            sink.pending.events.append(event)
            if sink.due():
                await sink.flush()

    @app.timer(FLUSH_INTERVAL_S)
    async def flush_fetched() -> None:
        if sink.due():
            await sink.flush()

    return sink.flush
