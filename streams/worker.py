"""Run a faust worker of byflyt's app: forever, or once through everything (``--drain``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import faust
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
    worker.execute_from_commandline()
