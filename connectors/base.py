"""The loop every connector shares: poll → validate → produce → checkpoint → back off.

A source module subclasses :class:`Connector` and only knows its API: :meth:`~Connector.discover`
says what there is to poll (and may produce records describing it, such as counting points),
:meth:`~Connector.poll` fetches one item from its checkpoint on and returns a
:class:`PollResult`. Every request goes through the ``call`` it is given, which retries
:class:`~byflyt.errors.RetriableError` with back-off and counts the outcome.

:class:`ConnectorRunner` owns the rest: the producer (acks=all), keys, the dead-letter topic,
metrics, checkpoints (written only after the records they cover are acknowledged, so a crash
never checkpoints past unproduced data), ``once`` versus follow mode with interruptible sleeps,
clean stops on SIGINT/SIGTERM, and a progress bar when stdout is a terminal. A failing item is
logged and counted, its checkpoint stays where it was, and the next item goes on.
"""

from __future__ import annotations

import logging
import signal
import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import FrameType
from typing import Generic, Protocol, Self, TypeVar

from kafka import KafkaProducer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from byflyt.connectors.checkpoints import CheckpointStore, send_and_wait
from byflyt.connectors.http import Backoff, HTTPRetriableError, SourceError
from byflyt.errors import RejectedInput, RetriableError
from byflyt.kafka import producer as kafka_producer
from byflyt.metrics import Metrics, default_metrics
from byflyt.models.envelope import Rejected
from byflyt.settings import Settings
from byflyt.topics import DLQ, TopicSpec

log = logging.getLogger(__name__)

T = TypeVar("T")
ItemT = TypeVar("ItemT")


class Keyed(Protocol):
    """A wire model with a Kafka key (``CountObservation``, ``CountPoint``, …)."""

    @property
    def key(self) -> str:
        """The record's Kafka key."""
        ...

    def to_bytes(self) -> bytes:
        """The record's value."""
        ...


@dataclass(frozen=True)
class Record:
    """One record to produce: its topic (logical name), key and value."""

    topic: TopicSpec
    key: str
    value: bytes

    @classmethod
    def of(cls, topic: TopicSpec, model: Keyed) -> Record:
        """A record of ``model`` keyed by its own key."""
        return cls(topic, model.key, model.to_bytes())


@dataclass(frozen=True)
class Discovery(Generic[ItemT]):
    """What a pass will poll, plus records describing it and input rejected on the way."""

    items: list[ItemT]
    records: list[Record] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


@dataclass(frozen=True)
class PollResult:
    """One item's poll: records to produce, rejected input, and the new checkpoint.

    ``checkpoint`` None leaves the item's checkpoint as it is. ``last_data`` is the newest event
    time received; ``counts`` are connector-specific tallies for the summary.
    """

    records: list[Record]
    rejected: list[Rejected] = field(default_factory=list)
    checkpoint: str | None = None
    last_data: datetime | None = None
    counts: Counter[str] = field(default_factory=Counter)


class Call(Protocol):
    """Runs one request to the source with retries and back-off; returns what it returns."""

    def __call__(self, request: Callable[[], T], what: str) -> T:
        """Call ``request`` (described by ``what`` in logs) until it works or retries run out."""
        ...


@dataclass(frozen=True)
class Window:
    """A half-open time range ``[since, until)`` of aware datetimes."""

    since: datetime
    until: datetime

    def __post_init__(self) -> None:
        if self.since.utcoffset() is None or self.until.utcoffset() is None:
            raise ValueError("window times must be timezone-aware")
        if self.until <= self.since:
            raise ValueError(f"window end {self.until} is not after its start {self.since}")

    @property
    def span(self) -> tuple[datetime, datetime]:
        """``(since, until)``."""
        return self.since, self.until

    @classmethod
    def live(cls, resume: datetime | None, now: datetime, lookback: timedelta) -> Window:
        """``[min(resume, now − lookback), now)``: re-poll the lookback, never leave a gap."""
        since = now - lookback if resume is None else min(resume, now - lookback)
        return cls(since, now)


class Connector(ABC, Generic[ItemT]):
    """A source: what to poll and how to poll one item. Subclasses set ``name`` and ``source``.

    Raise :class:`~byflyt.errors.ConfigError` from ``__init__`` for configuration that cannot
    work; inside ``call``, raise :class:`~byflyt.errors.RetriableError` for what may work if
    tried again, :class:`~byflyt.connectors.http.SourceError` for what never will, and
    :class:`~byflyt.errors.RejectedInput` for an answer that cannot be read (it goes to the
    dead-letter topic; the item fails). Records that fail validation are returned as
    :class:`Rejected` (see :meth:`reject`), not raised: the rest of the answer goes on.
    """

    name: str
    source: str

    @abstractmethod
    def discover(self, call: Call) -> Discovery[ItemT]:
        """The items to poll this pass (points, feeds, files)."""

    @abstractmethod
    def item_id(self, item: ItemT) -> str:
        """A stable id of ``item``: its checkpoint key and its name in logs."""

    @abstractmethod
    def poll(self, item: ItemT, position: str | None, call: Call) -> PollResult:
        """Fetch ``item`` from its checkpoint ``position`` (None: never polled)."""

    def reject(self, code: str, reason: str, raw: bytes | str | None, **context: str) -> Rejected:
        """A :class:`Rejected` for the dead-letter topic, stamped with this connector."""
        return Rejected.of(self.source, code, reason, self.name, raw, **context)

    def close(self) -> None:
        """Release clients (an HTTP connection pool, files)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass
class RunStats:
    """What a run did, for the summary and the exit status."""

    produced: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    failed: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)


class _ProgressBar:
    """Items done and pages fetched, drawn only when the console is a terminal."""

    def __init__(self, console: Console, description: str) -> None:
        self.console = console
        self.description = description
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._pages = 0

    @contextmanager
    def show(self, items: int) -> Iterator[None]:
        """Draw a bar of ``items`` while the block runs (quiet when not on a terminal)."""
        if not self.console.is_terminal:
            yield
            return
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[pages]} pages"),
        )
        self._pages = 0
        with Progress(*columns, console=self.console, transient=True) as progress:
            self._progress = progress
            self._task = progress.add_task(self.description, total=items, pages=0)
            try:
                yield
            finally:
                self._progress, self._task = None, None

    def page_done(self) -> None:
        """One more page (request) fetched."""
        self._pages += 1
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, pages=self._pages)

    def item_done(self) -> None:
        """One more item polled."""
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task)


class _Interrupted(Exception):
    """A stop was requested while a request waited to be retried."""


class ConnectorRunner(Generic[ItemT]):
    """Runs a :class:`Connector`: one pass (``once``) or a pass every ``interval``."""

    def __init__(
        self,
        connector: Connector[ItemT],
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        backoff: Backoff | None = None,
        console: Console | None = None,
    ) -> None:
        self.connector = connector
        self.settings = settings
        self.metrics = metrics or default_metrics()
        self.backoff = backoff or Backoff()
        self.console = console or Console()
        self.checkpoints = CheckpointStore(settings, connector.name, connector.source)
        self._stopping = threading.Event()
        self._last_data: datetime | None = None
        self._bar = _ProgressBar(self.console, connector.name)

    def stop(self) -> None:
        """Ask the run to stop after the current request; safe from any thread."""
        self._stopping.set()

    def run(self, *, once: bool = False, interval: timedelta = timedelta(minutes=15)) -> RunStats:
        """Load checkpoints, then poll once or every ``interval`` until stopped."""
        stats = RunStats()
        with self._stop_on_signals():
            producer = kafka_producer(self.settings)
            try:
                self.checkpoints.load()
                while not self._stopping.is_set():
                    self._pass(producer, stats)
                    if once or self._stopping.wait(interval.total_seconds()):
                        break
            finally:
                producer.close()
        return stats

    def _pass(self, producer: KafkaProducer, stats: RunStats) -> None:
        connector = self.connector
        try:
            discovery = connector.discover(self._call)
        except _Interrupted:
            return
        except (RetriableError, SourceError, RejectedInput) as exc:
            self._failed("discovery", exc, producer, stats)
            return
        self.deliver(producer, discovery.records, discovery.rejected, stats)
        with self._bar.show(len(discovery.items)):
            for item in discovery.items:
                if self._stopping.is_set():
                    return
                item_id = connector.item_id(item)
                try:
                    result = connector.poll(item, self.checkpoints.position(item_id), self._call)
                except _Interrupted:
                    return
                except (RetriableError, SourceError, RejectedInput) as exc:
                    self._failed(item_id, exc, producer, stats)
                    continue
                self.deliver(producer, result.records, result.rejected, stats)
                if result.checkpoint is not None:
                    self.checkpoints.save(producer, {item_id: result.checkpoint})
                self._note_last_data(result.last_data)
                stats.counts.update(result.counts)
                self._bar.item_done()

    def _call(self, request: Callable[[], T], what: str) -> T:
        labels = (self.connector.name, self.connector.source)
        retry = 0
        while True:
            if self._stopping.is_set():
                raise _Interrupted
            try:
                result = request()
            except RetriableError as exc:
                self._count_http_error(exc)
                if retry + 1 >= self.backoff.attempts:
                    self.metrics.polls.labels(*labels, "failed").inc()
                    raise
                self.metrics.polls.labels(*labels, "retry").inc()
                delay = self.backoff.delay(retry, exc.retry_after)
                retry += 1
                log.warning(
                    "%s %s: %s; retry %d of %d in %.1f s",
                    self.connector.name,
                    what,
                    exc,
                    retry,
                    self.backoff.attempts - 1,
                    delay,
                )
                if self._stopping.wait(delay):
                    raise _Interrupted from exc
            except (SourceError, RejectedInput) as exc:
                self._count_http_error(exc)
                self.metrics.polls.labels(*labels, "failed").inc()
                raise
            else:
                self.metrics.polls.labels(*labels, "ok").inc()
                self._bar.page_done()
                return result

    def _count_http_error(self, exc: Exception) -> None:
        if isinstance(exc, HTTPRetriableError | SourceError) and exc.status_class is not None:
            self.metrics.http_errors.labels(self.connector.source, exc.status_class).inc()

    def _failed(self, what: str, exc: Exception, producer: KafkaProducer, stats: RunStats) -> None:
        """An item (or discovery) gave up: log, count, dead-letter unreadable responses."""
        log.error("%s %s failed: %s", self.connector.name, what, exc)
        stats.failed.append(what)
        if isinstance(exc, RejectedInput):
            rejected = self.connector.reject("invalid_response", exc.reason, exc.raw, item=what)
            self.deliver(producer, [], [rejected], stats)

    def deliver(
        self,
        producer: KafkaProducer,
        records: list[Record],
        rejected: list[Rejected],
        stats: RunStats,
    ) -> None:
        """Produce records and rejected input, and wait until the broker has them all.

        A record larger than ``BYFLYT_MAX_RECORD_BYTES`` goes to the dead-letter topic as
        ``record_too_large`` with a bounded excerpt instead: one huge record never costs the rest
        of the page.
        """
        limit = self.settings.max_record_bytes
        if any(len(r.value) > limit for r in records):
            rejected = list(rejected)
            for r in records:
                if len(r.value) > limit:
                    reason = (
                        f"the {r.topic.name} record {r.key[:200]!r} is {len(r.value)} bytes, more "
                        f"than BYFLYT_MAX_RECORD_BYTES ({limit})"
                    )
                    rejected.append(
                        self.connector.reject("record_too_large", reason, r.value[:4096])
                    )
            records = [r for r in records if len(r.value) <= limit]
        dlq = self.settings.topic(DLQ.name)
        send_and_wait(
            producer,
            [(self.settings.topic(r.topic.name), r.key.encode(), r.value) for r in records]
            + [(dlq, r.source.encode(), r.to_bytes()) for r in rejected],
        )
        labels = (self.connector.name, self.connector.source)
        for topic, count in Counter(r.topic.name for r in records).items():
            self.metrics.produced.labels(*labels, topic).inc(count)
            stats.produced[topic] += count
        if rejected:
            self.metrics.produced.labels(*labels, DLQ.name).inc(len(rejected))
        for bad in rejected:
            self.metrics.rejected.labels(bad.source, bad.stage, bad.code).inc()
            log.warning("%s rejected %s: %s", self.connector.name, bad.code, bad.reason)
        stats.rejected += len(rejected)

    def _note_last_data(self, last_data: datetime | None) -> None:
        if last_data is not None and (self._last_data is None or last_data > self._last_data):
            self._last_data = last_data
            self.metrics.last_data.labels(self.connector.source).set(last_data.timestamp())

    @contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM stop the run cleanly; a second one aborts at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.getsignal(sig) for sig in signals}

        def handle(signum: int, _frame: FrameType | None) -> None:
            if self._stopping.is_set():
                raise KeyboardInterrupt
            log.warning("%s: stopping after the current request", signal.Signals(signum).name)
            self._stopping.set()

        for sig in signals:
            signal.signal(sig, handle)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
