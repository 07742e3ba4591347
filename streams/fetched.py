"""Fetched windows: ``bike.fetched`` → the store's ``fetched_windows``.

Every counter connector says, per point, which hours ``[since, until)`` it asked its source for
(:class:`~byflyt.models.counts.FetchedWindow`, keyed ``source:point_id``). ``store_fetched``
writes them to the store on the shared batched sink (:mod:`byflyt.streams.sink`), where each
point's windows are kept merged; the sensor status and the report read them there, so a point is
judged only over the hours its source was asked for and a gap between fetched windows is "not
ingested", never an outage. A record that does not parse goes to ``dlq.rejected`` as
``invalid_record``; a batch is acknowledged only after its windows are stored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import faust

from byflyt.metrics import Metrics, default_metrics
from byflyt.models.counts import FetchedWindow
from byflyt.settings import Settings
from byflyt.store import Store
from byflyt.streams.app import topic
from byflyt.streams.sink import Output, Route, Sink
from byflyt.streams.status import tracker_of
from byflyt.topics import COUNTS_FETCHED

AGENT = "store_fetched"


class FetchedSink(Sink):
    """Collects a batch's windows; its flush stores them in one transaction."""

    def __init__(self, app: faust.App, settings: Settings, metrics: Metrics) -> None:
        super().__init__(app, settings, metrics, AGENT, None)
        self.windows: list[FetchedWindow] = []

    async def apply(self, batch: list[tuple[FetchedWindow, faust.EventT]]) -> None:
        """Keep the batch's windows until the flush."""
        self.windows.extend(window for window, _ in batch)

    async def write(self) -> Output:
        """The pending windows as one store write."""
        windows, self.windows = self.windows, []
        if not windows:
            return Output()

        def store_them(store: Store) -> None:
            store.add_fetched(windows)

        def tell_status() -> None:  # sensor status reads the new windows before judging again
            tracker_of(self.app, self.settings).windows_known = False

        return Output(write=store_them, after=tell_status, count=len(windows))


def register(app: faust.App, settings: Settings) -> Callable[[], Awaitable[None]]:
    """Add the fetched-windows agent to ``app``; return the flush the drain calls."""
    sink = FetchedSink(app, settings, default_metrics())

    @app.agent(topic(app, settings, COUNTS_FETCHED), name=AGENT)
    async def store_fetched(stream: faust.StreamT[bytes]) -> None:
        await sink.consume(
            stream, Route(FetchedWindow.from_bytes, sink.apply, COUNTS_FETCHED.name, AGENT)
        )

    return sink.flush
