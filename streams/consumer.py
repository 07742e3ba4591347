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
:meth:`App.deliver_in_batches` skips it: :meth:`SeekSafeConsumer.getmany` keeps the records of
such a topic out of faust's per-record path and puts each fetch's records on the topic's
:class:`BatchChannel` as one list, which a sink (:meth:`byflyt.streams.sink.Sink.consume_batches`)
takes whole. The records stay faust's: they are tracked as unacknowledged while processed and
acknowledged after their results are stored, so faust's commits, its wait for in-flight records
before a rebalance and its seek bookkeeping cover them as they cover any stream's records.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, cast

import faust
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, Message
from faust.types.transports import TransportT

log = logging.getLogger(__name__)

# A batch cannot take longer than this to hand over unless a stream is stuck; the seek then goes
# ahead (as faust would) rather than hang the worker.
BATCH_HANDOVER_TIMEOUT_S = 60.0


BATCH_QUEUE_FETCHES = 2
"""Fetches a batch channel holds before the fetcher waits for its sink (back-pressure)."""


class BatchChannel:
    """The records of batch-delivered topics, one list per fetch, for one sink."""

    def __init__(self, maxsize: int = BATCH_QUEUE_FETCHES) -> None:
        self.queue: asyncio.Queue[list[Message]] = asyncio.Queue(maxsize)

    async def put(self, messages: list[Message]) -> None:
        """Hand one fetch's records over (waits while the sink is behind)."""
        await self.queue.put(messages)

    async def take(self, max_records: int) -> list[Message]:
        """The next fetch, joined by whatever further fetches are already waiting."""
        messages = await self.queue.get()
        while len(messages) < max_records and not self.queue.empty():
            messages += self.queue.get_nowait()
        return messages


class SeekSafeConsumer(aiokafka_driver.Consumer):
    """The aiokafka consumer; seeks wait for a quiet fetcher and exclude commits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batch_idle = asyncio.Event()
        self._batch_idle.set()
        self._batch_task: asyncio.Task[Any] | None = None

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """The next batch, marked as in flight until its last record has been handed over.

        Records of a batch-delivered topic are not yielded: they go to the topic's channel as
        one list, after the rest of the fetch. Like faust's own hand-over, a record older
        than its partition's read offset (already handed over before a seek moved it) is
        dropped, and the read offset moves to the last record handed over.
        """
        self._batch_idle.clear()
        self._batch_task = asyncio.current_task()
        channels = cast(App, self.app).batch_channels
        held: dict[BatchChannel, list[Message]] = {}
        read_offsets = self._read_offset
        try:
            async for tp, message in super().getmany(timeout):
                channel = channels.get(tp.topic) if channels else None
                if channel is None:
                    yield tp, message
                    continue
                offset = message.offset
                read = read_offsets[tp]
                if read is not None and offset < read:
                    continue
                read_offsets[tp] = offset
                held.setdefault(channel, []).append(message)
            for channel, messages in held.items():
                await channel.put(messages)
        finally:
            self._batch_task = None
            self._batch_idle.set()

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
