"""One batched, manual-ack sink that every aggregating agent is built on.

An agent hands its stream and its :class:`Route` to :meth:`Sink.consume`. Records arrive in batches
(faust's ``take_events``: up to :data:`BATCH_MAX` events, or what came within
:data:`FLUSH_INTERVAL_S`). Each event is parsed by the route's parser; what does not parse goes to
``dlq.rejected`` with one of the :data:`REASONS` and the metric ``byflyt_rejected_total`` (by
source, stage and reason). The rest is applied to the sink's state (the route's ``apply``), and
then the sink flushes once: the subclass's :meth:`Sink.write` returns the batch's output — records
for the output topic (state results, one per dirty key) and one store transaction — which is sent
and written, and only after that does ``take_events`` acknowledge the batch's events, so the
committed offsets never run ahead of the store. A crash replays the uncommitted tail, which
converges to the same rows.

The agents of the stream topics (counts, trip states, vehicles, transit facts, feed health) are
added with :meth:`Sink.batch_agent` instead: their records skip faust's per-event hand-over and
arrive a whole fetch at a time (:meth:`Sink.consume_batches`), with the same parse, dead-letter,
apply, flush and acknowledge steps, overlapped: a batch's store transaction runs on the writer
thread while the next batch is parsed and applied (:meth:`Sink.begin_flush`). At most
:attr:`Sink.writes_in_flight` writes of a sink are in flight (one; two for the cycling sink), in
order, and a batch is acknowledged only once its own write is done and the batch before it is
acknowledged, so the committed offsets still never run ahead of the store. A faust
table such an agent changes is written to its changelog once per changed key a flush
(:class:`byflyt.streams.tables.WriteBack`).

One :class:`WorkerStore` per worker (per faust app) is shared by every sink: one connection pool
and one writer thread, so store transactions stay in order and off the event loop.

A store write that fails with a :class:`~byflyt.errors.RetriableError` pauses the batch and is
tried again with back-off instead of failing the worker, on the writer thread itself: a
:meth:`WorkerStore.read` asked for after it waits until it has gone through. The cycling sink's
reads of stored point-hours (:meth:`WorkerStore.read_committed`) run beside it instead: a
kommune-hour leaves that sink's memory only once it is stored.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar, Generic, TypeVar, cast

import faust
import faust.streams as faust_streams
from aiokafka import AIOKafkaProducer
from faust.types import RecordMetadata
from mode import CrashingSupervisor
from pydantic import ValidationError

from byflyt.errors import RetriableError
from byflyt.metrics import Metrics
from byflyt.models.envelope import Rejected
from byflyt.partitioning import key_partitions
from byflyt.settings import Settings
from byflyt.store import Store
from byflyt.streams.app import BATCH_RECORDS, topic
from byflyt.streams.consumer import (
    Batch,
    BatchChannel,
    Record,
    SeekSafeConsumer,
    deliver_in_batches,
)
from byflyt.topics import DLQ

log = logging.getLogger(__name__)

BATCH_MAX = BATCH_RECORDS
"""Events per batch at most."""
FLUSH_INTERVAL_S = 0.5
"""A batch closes after this long even when it is not full (freshness of a quiet stream)."""
RETRY_S = (0.5, 1.0, 2.0, 5.0, 10.0)

REASONS = ("invalid_observation", "invalid_record", "too_late")
"""The dead-letter reason codes of the sinks: a record of ``bike.counts`` that does not parse is
an ``invalid_observation``; any other record that does not parse is an ``invalid_record``; a
record for state that is gone (beyond the sink's stated grace) is ``too_late``."""

T = TypeVar("T")
R = TypeVar("R")
E = TypeVar("E", faust.EventT, Record)
"""A record as a sink gets it: a faust event (a stream) or an aiokafka record (a batch)."""


def reason_of(exc: Exception) -> str:
    """A short, bounded reason for a record that failed validation."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}" for e in exc.errors()
        )[:500]
    return f"{type(exc).__name__}: {exc}"[:500]


@contextmanager
def in_event(event: faust.EventT) -> Iterator[None]:
    """Make ``event`` faust's current event while state is changed for it.

    A faust table writes its changelog to the partition of the current event (so a key's state
    is recovered on the worker that owns its input partition). Batches are applied outside
    faust's per-event iteration, so the sink sets it for each record it applies.
    """
    token = faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)


def manual_acks(stream: faust.StreamT[bytes]) -> faust.StreamT[bytes]:
    """The stream with automatic acks off: events are acked once their results are stored."""
    return cast(faust.Stream[bytes], stream).noack()  # StreamT does not declare noack()


@dataclass(frozen=True)
class Route(Generic[T, E]):
    """An agent's records: how one is parsed, what takes the parsed batch, how a reject is named.

    ``source`` and ``stage`` label what does not parse (``dlq.rejected`` and
    ``byflyt_rejected_total``), with the reason ``code`` (one of :data:`REASONS`).
    """

    parse: Callable[[bytes], T]
    apply: Callable[[list[tuple[T, E]]], Awaitable[None]]
    source: str
    stage: str
    code: str = "invalid_record"
    parse_all: Callable[[list[bytes | None]], list[T] | None] | None = None
    """Optional: every value of a batch parsed at once, or None when one of them does not
    parse as ``parse`` would take it (the batch is then parsed record by record, so what is
    dead-lettered, and why, is ``parse``'s)."""


@dataclass
class WorkerStore:
    """The store and the writer thread every sink of one worker shares.

    Every write, and every :meth:`read`, runs on the one writer thread, in the order it was
    asked for, and a transient failure is retried *on that thread*: a read asked for after a
    write therefore sees it, even when the write is still being retried (a read queued behind
    a failed attempt does not run until the write has gone through). :meth:`read_committed`
    runs on a reader thread of its own instead, for a caller that need not see the writes in
    flight.
    """

    store: Store
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="byflyt-store")
    )
    reader: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="byflyt-read")
    )

    async def read(self, query: Callable[[Store], R]) -> R:
        """Run a store read on the writer thread (it sees every write before it); retried."""
        return await self._retrying("read", query)

    async def read_committed(self, query: Callable[[Store], R]) -> R:
        """Run a store read on its own thread and connection, beside the writes; retried.

        It sees what is committed when it starts, not a write still in flight (nor one
        queued): for a caller that holds in memory whatever the writes in flight carry, so
        they cannot change its answer. It does not wait for them, so an agent's read for
        its next batch overlaps its last batch's write. A store that cannot read beside a
        write (in-memory SQLite) reads on the writer thread.
        """
        if not self.store.reads_beside_writes:
            return await self.read(query)
        return await self._retrying("read", query, self.reader)

    async def run(self, write: Callable[[Store], None]) -> None:
        """Run one store transaction on the writer thread; retry transient failures."""
        await self._retrying("write", write)

    async def _retrying(
        self, what: str, call: Callable[[Store], R], executor: ThreadPoolExecutor | None = None
    ) -> R:
        """``call`` on the writer thread (or ``executor``'s) until it succeeds.

        See :meth:`_attempts`. Cancelled (the worker stopping), the call is abandoned: not
        started, or no further attempt after the one running.
        """
        abandoned = threading.Event()
        loop = asyncio.get_running_loop()
        pool = executor or self.executor
        try:
            return await loop.run_in_executor(pool, self._attempts, what, call, abandoned)
        except asyncio.CancelledError:
            abandoned.set()
            raise

    def _attempts(self, what: str, call: Callable[[Store], R], abandoned: threading.Event) -> R:
        """``call`` until it succeeds, backing off on transient failures (on the writer thread).

        A store that is away (PostgreSQL restarting, SQLite locked by another writer) holds
        the batch: nothing is acknowledged until it is written, so the wait loses nothing.
        The back-off grows to :data:`RETRY_S`'s last pause and stays there; every failure is
        counted in ``byflyt_store_failures_total`` and ``/readyz`` says the store is down.
        """
        attempt = 0
        while True:
            try:
                return call(self.store)
            except RetriableError as exc:
                pause = RETRY_S[min(attempt, len(RETRY_S) - 1)]
                attempt += 1
                log.warning(
                    "store %s failed (attempt %d), retrying in %ss: %s", what, attempt, pause, exc
                )
                if abandoned.wait(pause):
                    raise


_STORES: weakref.WeakKeyDictionary[faust.App, WorkerStore] = weakref.WeakKeyDictionary()


def worker_store(app: faust.App, settings: Settings, metrics: Metrics) -> WorkerStore:
    """The one :class:`WorkerStore` of ``app`` (created by the first sink that asks)."""
    shared = _STORES.get(app)
    if shared is None:
        shared = WorkerStore(_open_store(settings, metrics))
        _STORES[app] = shared
    return shared


def _open_store(settings: Settings, metrics: Metrics) -> Store:
    """The store, waited for: a worker (re)started while the database is away retries it."""
    attempt = 0
    while True:
        try:
            return Store.from_settings(settings, metrics=metrics)
        except RetriableError as exc:
            pause = RETRY_S[min(attempt, len(RETRY_S) - 1)]
            attempt += 1
            log.warning(
                "opening the store failed (attempt %d), retrying in %ss: %s", attempt, pause, exc
            )
            time.sleep(pause)


@dataclass
class Output:
    """What one flush writes: records for the output topic, then one store transaction."""

    records: Sequence[tuple[bytes, bytes | None]] = field(default_factory=list)
    write: Callable[[Store], None] | None = None
    after: Callable[[], None] | None = None
    """Run after the store write (gauges, live hours)."""
    count: int = 0
    """Results written (the ``out`` metric)."""


async def send_batched(
    aio: AIOKafkaProducer, topic_name: str, records: Sequence[tuple[bytes | None, bytes | None]]
) -> list[asyncio.Future[RecordMetadata]]:
    """Send keyed ``records`` to ``topic_name`` a batch per partition; their delivery futures.

    Each record goes to the partition the producer's default partitioner would pick for its
    key (:func:`~byflyt.partitioning.key_partitions`, so a compacted topic keeps a key on one
    partition), in the order given, in record batches of the producer's batch size: one
    future a batch rather than a future, a hash and an accumulator call a record. Records
    without a key are sent one by one, as the producer spreads them.
    """
    if any(key is None for key, _ in records):
        return [
            cast(asyncio.Future, await aio.send(topic_name, value, key=key))
            for key, value in records
        ]
    ids = sorted(await aio.partitions_for(topic_name))
    by_partition: dict[int, list[tuple[bytes | None, bytes | None]]] = {}
    keys = cast(list[bytes], [key for key, _ in records])
    for index, record in zip(key_partitions(keys, len(ids)), records, strict=True):
        by_partition.setdefault(ids[index], []).append(record)
    sent: list[asyncio.Future[RecordMetadata]] = []
    for partition, batch_records in by_partition.items():
        batch = aio.create_batch()
        for key, value in batch_records:
            if batch.append(key=key, value=value, timestamp=None) is not None:
                continue
            if batch.record_count():  # full: send it, start the next with this record
                sent.append(await aio.send_batch(batch, topic_name, partition=partition))
                batch = aio.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is not None:
                    continue
            # Larger than a batch on its own: the producer sends it alone (or says why not).
            sent.append(await aio.send(topic_name, value, key=key, partition=partition))
            batch = aio.create_batch()
        if batch.record_count():
            sent.append(await aio.send_batch(batch, topic_name, partition=partition))
    return sent


class Sink(ABC):
    """Batched consumption, dead-lettering and flushing; subclasses keep state and write it."""

    writes_in_flight: ClassVar[int] = 1
    """How many of the sink's store writes may be in flight at once (:meth:`begin_flush`)."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        metrics: Metrics,
        name: str,
        output: faust.TopicT | None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.name = name
        self.output = output
        self.shared = worker_store(app, settings, metrics)
        self.store = self.shared.store
        self.dlq = topic(app, settings, DLQ)
        self.lock = asyncio.Lock()
        self.batches: list[Batch] = []
        """The partition batches of the fetch being applied (:meth:`consume_batches`)."""
        self.writing: asyncio.Future[None] | None = None
        """The last store write (:meth:`begin_flush`), if any: done only once every write
        before it is done too."""
        self._writes: deque[asyncio.Future[None]] = deque()
        """The store writes in flight, oldest first (at most :attr:`writes_in_flight`)."""

    # -- what a subclass provides --------------------------------------------------------------
    @abstractmethod
    async def write(self) -> Output:
        """Take the state changed since the last flush and return its output (under the lock)."""

    # -- consuming -----------------------------------------------------------------------------
    def batch_agent(
        self,
        inputs: faust.TopicT,
        parse: Callable[[bytes], T],
        apply: Callable[[list[tuple[T, Record]]], Awaitable[None]],
        *,
        source: str,
        stage: str,
        code: str = "invalid_record",
        parse_all: Callable[[list[bytes | None]], list[T] | None] | None = None,
    ) -> None:
        """Add the agent ``stage``, which takes the records of ``inputs`` a fetch at a time.

        The agent subscribes ``inputs`` (faust assigns their partitions) and hands their
        records, delivered in batches (:meth:`App.deliver_in_batches`), to
        :meth:`consume_batches`. A batch that fails to apply or to write stops the worker, not
        only the agent: an agent restarted in place would leave the batch in flight for good,
        while a restarted worker reads it again from the committed offsets.
        """
        channel = deliver_in_batches(self.app, inputs.topics)
        route = Route(parse, apply, source, stage, code, parse_all)

        async def agent(stream: faust.StreamT[bytes]) -> None:
            await self.consume_batches(channel, route)

        # Named after its stage in faust's logs and crash reports, as a decorated agent would be.
        agent.__module__, agent.__qualname__ = type(self).__module__, stage
        self.app.agent(inputs, name=stage, supervisor_strategy=CrashingSupervisor)(agent)

    async def consume(self, stream: faust.StreamT[bytes], route: Route[T, faust.EventT]) -> None:
        """Batches of ``stream``: parse, dead-letter, apply, flush, then (faust) ack."""
        records_in = self.metrics.agent_records.labels(route.stage, "in")
        batches = cast(faust.Stream[bytes], stream).take_events(BATCH_MAX, FLUSH_INTERVAL_S)
        async for events in batches:
            parsed = await self._parse(events, route)
            records_in.inc(len(events))
            if parsed:
                await route.apply(parsed)
            await self.flush()

    async def consume_batches(self, channel: BatchChannel, route: Route[T, Record]) -> None:
        """Whole fetches from ``channel``: parse, dead-letter, apply, flush, then ack.

        The batch path of a busy topic (see :mod:`byflyt.streams.consumer`): no per-record
        hand-over through faust's streams, and no faust ``Message`` per record. ``route.apply`` gets
        the parsed records beside their aiokafka records (``topic``, ``partition``, ``offset``,
        ``key`` and ``value``, as a faust message has them); while it runs, :attr:`batches`
        holds the fetch's partition batches (how far each partition has been read). As a
        faust stream does, batches fetched
        before a rebalance (an older consumer generation, or while faust holds the flow) are
        skipped: faust seeks back to the committed offsets after the rebalance and fetches
        them again. The rest are tracked as in flight (faust waits for them before it gives
        partitions away) and acknowledged, a partition batch at a time, once their results
        are stored, so the commit follows the store.
        """
        app = self.app
        consumer = cast(SeekSafeConsumer, app.consumer)
        flow = app.flow_control
        records_in = self.metrics.agent_records.labels(route.stage, "in")
        stored: asyncio.Future[None] | None = None
        """The previous batch: acknowledged once its store write is done (at most one)."""
        try:
            while True:
                fetched = await self._next_fetch(channel, stored)
                generation = app.consumer_generation_id
                if not flow.is_active():
                    continue
                batches = [b for b in fetched if b.generation_id == generation]
                for batch in batches:
                    consumer.track_batch(batch)
                records = [r for b in batches for r in b.records]
                parsed = await self._parse(records, route)
                records_in.inc(len(records))
                self.batches = batches
                try:
                    await route.apply(parsed)
                    written = await self.begin_flush()
                except BaseException:
                    # Not written, so not acknowledged: release the batch (faust would
                    # otherwise wait for it forever on the way down: a failure, or the worker
                    # stopping in the middle of a batch) and let the agent stop; a restart
                    # reads the batch again from the committed offsets.
                    self._release(consumer, batches)
                    raise
                stored = asyncio.ensure_future(
                    self._ack_when_stored(consumer, batches, written, stored)
                )
        finally:
            if stored is not None and not stored.done():
                stored.cancel()

    async def _next_fetch(
        self, channel: BatchChannel, stored: asyncio.Future[None] | None
    ) -> list[Batch]:
        """The next fetch; raises at once if the previous batch's store write failed."""
        if stored is None or stored.done():
            if stored is not None:
                stored.result()
            return await channel.take(BATCH_MAX)
        take = asyncio.ensure_future(channel.take(BATCH_MAX))
        try:
            await asyncio.wait((take, stored), return_when=asyncio.FIRST_COMPLETED)
            if stored.done():
                stored.result()
            return await take
        finally:
            if not take.done():
                take.cancel()

    @staticmethod
    def _release(consumer: SeekSafeConsumer, batches: list[Batch]) -> None:
        for batch in batches:
            consumer.release_batch(batch)

    async def _ack_when_stored(
        self,
        consumer: SeekSafeConsumer,
        batches: list[Batch],
        written: asyncio.Future[None],
        before: asyncio.Future[None] | None,
    ) -> None:
        """Acknowledge ``batches`` once their store write is done, after the batch before."""
        try:
            if before is not None:
                await before
            await written
        except BaseException:
            self._release(consumer, batches)
            raise
        for batch in batches:
            consumer.ack_batch(batch)

    async def _parse(self, records: Sequence[E], route: Route[T, E]) -> list[tuple[T, E]]:
        """Each record parsed, beside it; what does not parse goes to the dead-letter topic."""
        if route.parse_all is not None and records:
            every = route.parse_all([record.value for record in records])
            if every is not None:
                return list(zip(every, records, strict=True))
        parse, source, stage, code = route.parse, route.source, route.stage, route.code
        parsed: list[tuple[T, E]] = []
        for record in records:
            value = record.value
            if value is None:
                await self.reject(source, code, None, "a record without a value", stage)
                continue
            try:
                parsed.append((parse(value), record))
            except (ValidationError, ValueError, TypeError) as exc:
                await self.reject(source, code, value, reason_of(exc), stage)
        return parsed

    async def reject(
        self, source: str, code: str, raw: bytes | None, reason: str, stage: str
    ) -> None:
        """Send a record to the dead-letter topic with its reason, and count it."""
        if code not in REASONS:
            raise ValueError(f"unknown dead-letter reason {code!r}: one of {REASONS}")
        rejected = Rejected.of(source, code, reason, stage, raw)
        self.metrics.rejected.labels(source, stage, code).inc()
        await self.dlq.send(key=source.encode(), value=rejected.to_bytes())

    # -- flushing ------------------------------------------------------------------------------
    async def flush(self) -> None:
        """Write what changed since the last flush and wait until it is stored."""
        await (await self.begin_flush())

    async def begin_flush(self) -> asyncio.Future[None]:
        """Start writing what changed since the last flush; await the result until it is stored.

        The output topic's records are sent at once; the store transaction goes to the writer
        thread, so the next batch can be read and applied while it is written. At most
        :attr:`writes_in_flight` writes of a sink are in flight: this first waits until fewer
        are (and raises the error of one that failed). The writes run in order, on the one
        writer thread, and each is done only once the one before it is.
        """
        async with self.lock:
            writes = self._writes
            while writes and (writes[0].done() or len(writes) >= self.writes_in_flight):
                await writes.popleft()
            started = time.perf_counter()
            out = await self.write()
            if not (out.records or out.write):
                if self.writing is not None:
                    return self.writing  # done once what is written before is
                done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                done.set_result(None)
                return done
            sent: list[asyncio.Future[RecordMetadata]] = []
            if self.output is not None and out.records:
                # Straight to the producer faust holds (not through faust's per-message
                # machinery: a topic's send costs a future message, serialisation and
                # sensors per record). The batch is acknowledged only once every record is
                # delivered (:meth:`_store`), and faust flushes the producer before it commits.
                producer = await self.app.maybe_start_producer()
                aio = producer._ensure_producer()  # faust's aiokafka producer
                sent = await send_batched(aio, self.output.get_topic_name(), out.records)
            self.writing = asyncio.ensure_future(self._store(out, started, sent, self.writing))
            writes.append(self.writing)
            return self.writing

    async def _store(
        self,
        out: Output,
        started: float,
        sent: Sequence[asyncio.Future[RecordMetadata]] = (),
        before: asyncio.Future[None] | None = None,
    ) -> None:
        """The store write of ``out`` (retried while the store is away), then its ``after``.

        Done once the output records ``sent`` for it are delivered too (a delivery that
        failed fails the batch, which is then not acknowledged), and the write ``before`` it
        is done (its ``after`` runs first; its failure fails this one too).
        """
        if out.write is not None:
            await self.shared.run(out.write)
        if sent:
            await asyncio.gather(*sent)
        if before is not None:
            await before
        if out.after is not None:
            out.after()
        self.metrics.agent_records.labels(self.name, "out").inc(out.count)
        self.metrics.processing_seconds.labels(self.name).observe(time.perf_counter() - started)
