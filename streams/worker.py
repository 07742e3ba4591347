"""Run a faust worker of byflyt's app: forever, or once through everything (``--drain``)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from collections.abc import Iterable

import faust
from aiokafka.errors import KafkaError
from mode.utils.futures import maybe_cancel

from byflyt.kafka import create_topics_waiting
from byflyt.metrics import default_metrics
from byflyt.settings import Settings
from byflyt.streams.app import AgentRegistrar, create_app
from byflyt.streams.drain import Flush, install_drain, install_lag_gauge
from byflyt.streams.state_check import ensure_state
from byflyt.streams.web import add_health_views, add_metrics_view

log = logging.getLogger(__name__)


def build_worker(
    settings: Settings,
    registrars: Iterable[AgentRegistrar],
    *,
    drain: bool = False,
    web_port: int | None = None,
    loglevel: str = "warning",
    app_id: str | None = None,
) -> tuple[faust.App, faust.Worker]:
    """Create the app, let each registrar add its agents, and wrap it in a worker."""
    # A one-shot drain serves nothing: no web port to collide with other runs.
    app = create_app(settings, app_id=app_id, drain=drain, web_port=web_port, web_enabled=not drain)
    if not drain:
        add_metrics_view(app, default_metrics().registry)
        add_health_views(app, settings)
        install_lag_gauge(app, settings, default_metrics())
    flushes: list[Flush] = []
    for register in registrars:
        flush = register(app, settings)
        if flush is not None:
            flushes.append(flush)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    # faust's progress spinner writes terminal escape codes into logs and adds a DEBUG-level
    # handler to the root logger; a service's log has no use for it.
    worker.spinner = None
    if drain:
        stopping: list[asyncio.Future[None]] = []

        def stop() -> None:
            stopping.append(asyncio.ensure_future(_stop(worker)))

        install_drain(app, settings, on_done=stop, flushes=flushes)
    return app, worker


async def _stop(worker: faust.Worker) -> None:
    await worker.stop()
    maybe_cancel(worker._starting_fut)


def run_worker(
    settings: Settings,
    registrars: Iterable[AgentRegistrar],
    *,
    drain: bool = False,
    web_port: int | None = None,
    loglevel: str = "warning",
) -> None:
    """Run the worker until stopped (or, with ``drain``, until everything is processed).

    Raises :class:`~byflyt.streams.state_check.StateLostError` before starting when a table's
    changelog is gone and its state cannot be rebuilt from the input.
    """
    app, worker = build_worker(
        settings, registrars, drain=drain, web_port=web_port, loglevel=loglevel
    )
    ensure_state(app, settings)
    # The store and the state check may have waited out an outage that the broker is still in;
    # faust exits at once when it cannot bootstrap, so wait for the broker here, with back-off.
    create_topics_waiting(settings)
    tune_gc()
    try:
        worker.execute_from_commandline()
    except SystemExit as stop:
        if stop.code not in (0, None) and _broker_went_away(stop.__context__):
            _start_again(settings, stop.__context__)
        raise


GC_THRESHOLDS = (50_000, 20, 100)
"""The collector's thresholds in a worker (Python's default: 700, 10, 10)."""


def tune_gc() -> None:
    """Collect garbage less often in a worker that allocates a few objects per record.

    A fetch of 25,000 records makes a few short-lived objects per record (the fetched
    record, its parsed value, a pair of them). With the default thresholds the young
    generation was collected every 700 allocations, and the older ones, which hold the
    worker's whole state, as often as every 7,000 and 70,000: measured, about a tenth of the
    worker's CPU at 1M counts. What start-up built (modules, the app) is frozen out of every
    collection. Reference cycles are still collected, only in larger steps.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


RESTARTS_ENV = "BYFLYT_WORKER_BROKER_RESTARTS"
MAX_BROKER_RESTARTS = 20
"""Times a worker starts itself again after losing the broker before it gives up."""


def _broker_went_away(exc: BaseException | None) -> bool:
    """Whether faust stopped because Kafka could not be reached (it does not retry that).

    faust retries a lost broker while it runs, but an error while it starts (the broker gone
    between the wait for it and faust's first request) stops the worker.
    """
    return isinstance(exc, KafkaError | ConnectionError)


def _start_again(settings: Settings, cause: BaseException | None) -> None:
    """Wait for the broker, then replace this process with a fresh start of the same command.

    In-process restarts of a faust app are not reliable; a fresh process resumes from the
    committed offsets like any restart. Bounded by :data:`MAX_BROKER_RESTARTS`.
    """
    restarts = int(os.environ.get(RESTARTS_ENV, "0"))
    if restarts >= MAX_BROKER_RESTARTS:
        log.error("the broker went away %d times while the worker ran; giving up", restarts)
        return
    log.warning(
        "the broker went away while the worker started (%s); waiting for it, then starting again",
        cause,
    )
    create_topics_waiting(settings)
    os.environ[RESTARTS_ENV] = str(restarts + 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, sys.orig_argv)  # noqa: S606 - this very command, started afresh
