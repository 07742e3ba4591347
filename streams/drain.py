"""``byflyt worker --drain``: process everything that is in the input topics, then exit 0.

The drain check is deliberately external to faust's internals: it compares the consumer
group's committed offsets (what Kafka itself records as done) with the log-end offsets of every
partition the worker consumes, repartition topics included. When they agree on two consecutive
checks, every registered sink is flushed, offsets are committed once more and the worker stops.
Because offsets are committed only after agents have processed their records (and faust
flushes the producer before it commits), "committed == end" means the results are written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import faust
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from byflyt.kafka import admin, end_offsets
from byflyt.metrics import Metrics
from byflyt.settings import Settings
from byflyt.streams.app import BATCH_RECORDS

log = logging.getLogger(__name__)

Flush = Callable[[], Awaitable[None]]
FAR_BEHIND = 10 * BATCH_RECORDS
"""Records behind (at the last check) from which the drain loop checks a quarter as often and
flushes nothing before it checks: the agents are busy with whole batches, each flushed as it
is applied, and a flush of theirs from here only waits for their store."""


@dataclass
class DrainState:
    """What the drain loop saw last; exposed for logs and tests."""

    checks: int = 0
    lag: dict[str, int] = field(default_factory=dict)
    done: bool = False


def partition_lag(settings: Settings, group_id: str, topics: set[str]) -> dict[TopicPartition, int]:
    """Records per partition of ``topics`` that ``group_id`` has not yet committed (0 too)."""
    ends = end_offsets(settings, topics)
    if not ends:
        return {}
    client = admin(settings)
    try:
        offsets = client.list_group_offsets({group_id: None}).get(group_id, {})
    finally:
        client.close()
    committed = {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
    return {tp: max(end - committed.get(tp, 0), 0) for tp, end in ends.items()}


def group_lag(settings: Settings, group_id: str, topics: set[str]) -> dict[str, int]:
    """Records per partition that ``group_id`` has not yet committed, for ``topics``."""
    return {
        f"{tp.topic}[{tp.partition}]": n
        for tp, n in partition_lag(settings, group_id, topics).items()
        if n > 0
    }


def agent_topics(app: faust.App) -> set[str]:
    """The agents' input topics: changelogs and faust's leader topic have no group offsets."""
    return {name for agent in app.agents.values() for name in getattr(agent.channel, "topics", ())}


def install_lag_gauge(
    app: faust.App, settings: Settings, metrics: Metrics, interval: float = 15.0
) -> None:
    """Keep ``byflyt_consumer_lag_records`` for the input partitions this worker holds."""

    @app.timer(interval)
    async def measure_lag() -> None:
        if app.rebalancing:
            return
        held = {(tp.topic, tp.partition) for tp in app.consumer.assignment()}
        if not held:
            return
        loop = asyncio.get_running_loop()
        try:
            lag = await loop.run_in_executor(
                None, partition_lag, settings, app.conf.id, agent_topics(app)
            )
        except (KafkaError, OSError) as exc:  # a broker hiccup must not stop the worker
            log.warning("consumer lag not measured: %s", exc)
            return
        for tp, n in lag.items():
            if (tp.topic, tp.partition) in held:
                metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(n)


def install_drain(
    app: faust.App,
    settings: Settings,
    *,
    on_done: Callable[[], None],
    flushes: list[Flush] | None = None,
    interval: float = 0.5,
    stable_checks: int = 2,
) -> DrainState:
    """Add the drain loop to ``app``; ``on_done`` is called once everything is processed."""
    state = DrainState()
    flush_all = flushes or []

    @app.task
    async def drain_loop() -> None:
        loop = asyncio.get_running_loop()
        quiet = 0
        while True:
            far = sum(state.lag.values()) > FAR_BEHIND
            await asyncio.sleep(4 * interval if far else interval)
            if app.rebalancing or not app.consumer.assignment():
                quiet = 0
                continue
            topics = agent_topics(app)
            if not far:
                # Flush so the agents ack what they hold; faust's own commit loop (every 0.5 s in
                # drain mode) then commits. Committing here as well races with that loop.
                for flush in flush_all:
                    await flush()
            lag = await loop.run_in_executor(None, group_lag, settings, app.conf.id, topics)
            state.checks += 1
            state.lag = lag
            if state.checks % 20 == 0:
                log.info("draining: %d records behind: %s", sum(lag.values()), lag)
            quiet = quiet + 1 if not lag else 0
            if quiet >= stable_checks:
                for flush in flush_all:
                    await flush()
                await app.consumer.commit()
                state.done = True
                log.info("drained after %d checks", state.checks)
                on_done()
                return

    return state
