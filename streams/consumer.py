"""A faust app whose consumer cannot lose records around a seek to committed offsets.

faust-streaming 0.15 has a race in table recovery. When a worker starts on a group that already
has committed offsets and non-empty changelogs, recovery starts the fetcher to read the
changelogs, resumes the stream partitions and then seeks them to their committed offsets, in a
separate task. A batch the fetcher starts in between is still being handed to the streams while
the seek resets the read offsets; each of its records moves the read offset forward again, the
fetcher then discards the re-fetched records as already read, and offset bookkeeping for the
partition goes wrong. A record is never processed, or the partition's commits stall for good.
(Seen as a restarted ``worker --drain`` that lost a correction or never finished;
``tests/test_cycling_stream.py`` reproduced it in about one run in three.)

The fix closes the window. Before seeking, the consumer pauses the stream partitions it is
about to seek, waits until the batch in flight (if any) has been handed over completely, and
holds off commits; after the seek, it resumes the partitions. Records handed over before the
seek are fetched again after it and processed twice, which the agents tolerate: their state is
keyed by the record, so a repeat replaces.

A second hole: the records of a partition paused in the middle of a batch are skipped (consumed
from aiokafka's buffer, never handed to a stream), and the seek is what brings them back. For a
partition that has no committed offset yet, aiokafka's seek-to-committed does nothing, so they
were lost for good and the partition's lag never fell (seen as a ``worker --drain`` after a
SIGKILL that waited forever with the same lag). Such partitions now go back to their beginning.

Batched delivery. faust hands every record to its streams one at a time (a conductor callback,
a channel queue and a stream iteration per record, several futures each): on a busy count topic
that per-record hand-over was most of a worker's time. A topic registered with
:meth:`App.deliver_in_batches` skips it, and faust's per-record ``Message`` with it: the
consumer takes such a topic's records out of each fetch as aiokafka returned them and puts them
on the topic's :class:`BatchChannel`, one :class:`Batch` per partition, which a sink
(:meth:`byflyt.streams.sink.Sink.consume_batches`) takes whole. The records stay faust's to
commit: a batch is tracked as in flight while processed (one entry in faust's set of
unacknowledged messages, which faust waits for before a rebalance or a stop) and its offsets
are acknowledged together after its results are stored, into the same bookkeeping faust's
``ack`` keeps, so faust's commits and its seeks cover them as they cover any stream's records.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias, cast

import faust
from aiokafka.structs import ConsumerRecord
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, Message
from faust.types.transports import TransportT
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

log = logging.getLogger(__name__)

# A batch cannot take longer than this to hand over unless a stream is stuck; the seek then goes
# ahead (as faust would) rather than hang the worker.
BATCH_HANDOVER_TIMEOUT_S = 60.0


Record: TypeAlias = "ConsumerRecord[bytes, bytes]"
"""A record of a batch-delivered topic, as aiokafka returns it."""
RecordMap: TypeAlias = dict[TP, list[Any]]
"""What aiokafka's fetch returns: each partition's records."""

BATCH_QUEUE_FETCHES = 2
"""Fetches a batch channel holds before the fetcher waits for its sink (back-pressure)."""


class InFlight:
    """Stands for a batch's records in faust's set of unacknowledged messages.

    faust waits until that set is empty before it gives partitions away or stops; a batch is
    in it, as one entry, from the moment a sink takes it until it is acknowledged or released.
    """

    __slots__ = ("__weakref__", "acked", "refcount")

    def __init__(self) -> None:
        self.acked = False
        self.refcount = 1


@dataclass(eq=False)
class Batch:
    """One partition's records of one fetch, as aiokafka returned them (no faust ``Message``).

    ``records`` have contiguous positions in the partition: ``first`` to ``last`` (offsets in
    between that hold no record, such as transaction markers, are covered too).
    """

    tp: TP
    records: list[Record]
    generation_id: int
    token: InFlight = field(default_factory=InFlight)

    @property
    def first(self) -> int:
        """The first record's offset."""
        return self.records[0].offset

    @property
    def last(self) -> int:
        """The last record's offset."""
        return self.records[-1].offset


class BatchChannel:
    """The records of batch-delivered topics, one list of partition batches per fetch."""

    def __init__(self, maxsize: int = BATCH_QUEUE_FETCHES) -> None:
        self.queue: asyncio.Queue[list[Batch]] = asyncio.Queue(maxsize)

    async def put(self, batches: list[Batch]) -> None:
        """Hand one fetch's records over (waits while the sink is behind)."""
        await self.queue.put(batches)

    async def take(self, max_records: int) -> list[Batch]:
        """The next fetch, joined by whatever further fetches are already waiting."""
        batches = await self.queue.get()
        n = sum(len(b.records) for b in batches)
        while n < max_records and not self.queue.empty():
            more = self.queue.get_nowait()
            batches += more
            n += sum(len(b.records) for b in more)
        return batches


class SeekSafeConsumer(aiokafka_driver.Consumer):
    """The aiokafka consumer; seeks wait for a quiet fetcher and exclude commits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batch_idle = asyncio.Event()
        self._batch_idle.set()
        self._batch_task: asyncio.Task[Any] | None = None
        self._held: dict[BatchChannel, list[Batch]] = {}

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """The next batch, marked as in flight until its last record has been handed over.

        Records of a batch-delivered topic are not yielded, nor made into faust messages:
        :meth:`_wait_next_records` takes them out of the fetch, and they go to the topic's
        channel as one :class:`Batch` per partition, after the rest of the fetch. Like faust's
        own hand-over, a record older than its partition's read offset (already handed over
        before a seek moved it) is dropped, and the read offset moves to the last record
        handed over.
        """
        self._batch_idle.clear()
        self._batch_task = asyncio.current_task()
        try:
            async for tp, message in super().getmany(timeout):
                yield tp, message
            held, self._held = self._held, {}
            for channel, batches in held.items():
                await channel.put(batches)
        finally:
            self._held = {}
            self._batch_task = None
            self._batch_idle.set()

    async def _wait_next_records(self, timeout: float) -> tuple[RecordMap | None, set[TP] | None]:
        """The fetch of faust, less the batch-delivered partitions' records (kept as batches)."""
        fetched, active = await super()._wait_next_records(timeout)
        records = cast("RecordMap | None", fetched)
        channels = cast(App, self.app).batch_channels
        if not (records and channels) or self.should_stop or not self.flow_active:
            return records, active
        rest: RecordMap = {}
        generation = self.app.consumer_generation_id
        read_offsets = self._read_offset
        buffered = self._buffered_partitions
        for tp, tp_records in records.items():
            channel = channels.get(tp.topic)
            if channel is None:
                rest[tp] = tp_records
                continue
            if active is not None and tp not in active and tp not in buffered:
                continue
            read = read_offsets[tp]
            if read is not None and tp_records and tp_records[0].offset < read:
                tp_records = [r for r in tp_records if r.offset >= read]
            if not tp_records:
                continue
            read_offsets[tp] = tp_records[-1].offset
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            self._held.setdefault(channel, []).append(Batch(tp, tp_records, generation))
        return rest, active

    def track_batch(self, batch: Batch) -> None:
        """Mark ``batch`` as in flight (faust waits for it before a rebalance or a stop)."""
        self._unacked_messages.add(cast(Message, batch.token))

    def release_batch(self, batch: Batch) -> None:
        """Forget ``batch`` as in flight without acknowledging it (it stays uncommitted)."""
        self._unacked_messages.discard(cast(Message, batch.token))

    def ack_batch(self, batch: Batch) -> None:
        """Acknowledge every offset of ``batch`` at once, as faust's ``ack`` does one by one.

        Offsets already committed or already acknowledged are left alone; the rest join the
        partition's acknowledged offsets, from which faust's commit takes the next offset.
        """
        tp = batch.tp
        with ack_lock:
            token = batch.token
            if token.acked:
                return
            token.acked = True
            try:
                self._unacked_messages.discard(cast(Message, token))
                committed = self._committed_offset[tp]
                first = batch.first if committed is None else max(batch.first, committed)
                if first > batch.last:
                    return
                index = self._acked_index[tp]
                fresh = set(range(first, batch.last + 1))
                fresh -= index
                if not fresh:
                    return
                index |= fresh
                self._acked[tp].extend(sorted(fresh))
                self._n_acked += len(fresh)
            finally:
                notify(self._waiting_for_ack)

    def _new_offset(self, tp: TP) -> int | None:
        """The offset to commit for ``tp``: past the first run of acknowledged offsets.

        faust's own walks every acknowledged offset through ``itertools.groupby`` with a
        Python key function, about half a second per million records. When the partition
        has no gaps recorded and its acknowledged offsets (sorted) are one run with nothing
        twice, which a list comparison in C tells, the answer is the run's end; anything
        else is left to faust's.
        """
        acked = self._acked[tp]
        if not acked or self._gap.get(tp):
            return super()._new_offset(tp)
        acked.sort()
        first, n = acked[0], len(acked)
        committed = self._committed_offset[tp]
        if committed and first - committed > 1:
            return None  # a gap at the head: nothing new to commit (as faust's)
        run = range(first, first + n)
        if acked[-1] != run[-1] or acked != list(run):
            return super()._new_offset(tp)
        acked.clear()
        self._acked_index[tp].difference_update(run)
        return first + n

    async def perform_seek(self) -> None:
        """Seek every partition to its committed offset with nothing in flight."""
        if self._batch_task is not None and self._batch_task is asyncio.current_task():
            # faust seeks from inside getmany when the flow is stopped: nothing else in flight.
            await super().perform_seek()
            return
        streams = {tp for tp in self._get_active_partitions() if not self._is_changelog_tp(tp)}
        self.pause_partitions(streams)
        try:
            await self._wait_batch_handed_over()
            await self.maybe_wait_for_commit_to_finish()
            self._commit_fut = asyncio.get_running_loop().create_future()
            try:
                await super().perform_seek()
            finally:
                fut, self._commit_fut = self._commit_fut, None
                if not fut.done():
                    fut.set_result(None)
        finally:
            self.resume_partitions(streams)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek to the committed offsets; a partition without one goes back to its start.

        aiokafka leaves a partition that has no committed offset where it is. After recovery
        that position can lie past records that were fetched but never handed to a stream
        (faust skips the records of a partition paused mid-batch, trusting this seek to bring
        them back). With ``consumer_auto_offset_reset`` ``earliest`` such a partition has never
        been committed, so everything in it is still to be processed: seek it to the beginning,
        as the reset policy would have on a fresh assignment.
        """
        committed = await super().seek_to_committed()
        if self.app.conf.consumer_auto_offset_reset == "earliest":
            fresh = [
                tp
                for tp, offset in committed.items()
                if (offset is None or offset < 0) and not self._is_changelog_tp(tp)
            ]
            if fresh:
                await self._thread.seek_to_beginning(*fresh)
        return committed

    async def _wait_batch_handed_over(self) -> None:
        try:
            await asyncio.wait_for(self._batch_idle.wait(), BATCH_HANDOVER_TIMEOUT_S)
        except TimeoutError:
            log.warning(
                "a fetched batch was not handed over in %.0f s; seeking anyway",
                BATCH_HANDOVER_TIMEOUT_S,
            )


class SeekSafeTransport(aiokafka_driver.Transport):
    """The aiokafka transport with :class:`SeekSafeConsumer`."""

    Consumer = SeekSafeConsumer


class App(faust.App):
    """faust's App with the seek-safe consumer transport and batched delivery."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch_channels: dict[str, BatchChannel] = {}

    def deliver_in_batches(self, topics: Iterable[str]) -> BatchChannel:
        """One channel that gets the records of ``topics`` a fetch at a time.

        The topics must still be subscribed by an agent (faust subscribes to and assigns
        the topics its agents read); that agent takes its records from the channel.
        """
        channel = BatchChannel()
        for name in topics:
            if name in self.batch_channels:
                raise ValueError(f"topic {name!r} is already delivered in batches")
            self.batch_channels[name] = channel
        return channel

    def _new_transport(self) -> TransportT:
        return SeekSafeTransport(self.conf.broker_consumer, self)


def deliver_in_batches(app: faust.App, topics: Iterable[str]) -> BatchChannel:
    """:meth:`App.deliver_in_batches` of ``app``, which must be built by ``create_app``."""
    if not isinstance(app, App):
        raise TypeError("batched delivery needs the app of byflyt.streams.app.create_app")
    return app.deliver_in_batches(topics)
