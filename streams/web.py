"""The worker's web views on the faust web server: ``/metrics``, ``/healthz``, ``/readyz``."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from faust.web import Request, Response, View
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry, generate_latest

from byflyt.errors import ByflytError
from byflyt.settings import Settings
from byflyt.store import Store
from byflyt.streams.drain import agent_topics, partition_lag
from byflyt.streams.health import ALIVE, Check, lag_check, readiness, store_check

READY_TIMEOUT_S = 10.0

# The classic text format, which every Prometheus reads. Without a charset: aiohttp refuses
# one in a content type and adds "charset=utf-8" itself.
CONTENT_TYPE = "text/plain; version=0.0.4"


def add_metrics_view(app: faust.App, registry: CollectorRegistry) -> None:
    """Serve ``registry`` at ``/metrics`` in Prometheus' text format."""

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            """The current value of every metric."""
            return self.bytes(generate_latest(registry), content_type=CONTENT_TYPE)


def add_health_views(app: faust.App, settings: Settings) -> None:
    """``/healthz`` (the web server answers) and ``/readyz`` (:mod:`byflyt.streams.health`).

    Ready means: the store answers, Kafka answers, the first assignment and table recovery are
    done and no rebalance is under way, and the partitions this worker holds are at most
    ``BYFLYT_READY_MAX_LAG`` records behind.
    """
    stores: list[Store] = []
    recovered: list[bool] = []

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]  # mode types a narrower callable
    def on_recovered(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        recovered.append(True)  # partitions assigned and tables recovered at least once

    def check_store() -> Check:
        try:
            if not stores:
                stores.append(Store.from_settings(settings))
        except Exception as exc:  # noqa: BLE001 - any failure to open is "not ready"
            return Check(False, f"cannot open: {type(exc).__name__}")
        return store_check(stores[0])

    async def check_kafka() -> dict[str, Check]:
        if not recovered:
            return {"kafka": Check(False, "starting: partitions not assigned and recovered yet")}
        if app.rebalancing:
            return {"kafka": Check(False, "rebalancing")}
        held = {(tp.topic, tp.partition) for tp in app.consumer.assignment()}
        loop = asyncio.get_running_loop()
        try:
            lag = await asyncio.wait_for(
                loop.run_in_executor(None, partition_lag, settings, app.conf.id, agent_topics(app)),
                READY_TIMEOUT_S,
            )
        except (KafkaError, ByflytError, OSError, TimeoutError) as exc:
            return {"kafka": Check(False, f"not answering: {type(exc).__name__}")}
        behind = sum(n for tp, n in lag.items() if (tp.topic, tp.partition) in held)
        return {
            "kafka": Check(True, f"{len(held)} partitions held", {"partitions": len(held)}),
            "lag": lag_check(behind, settings.ready_max_lag),
        }

    @app.page("/healthz")
    class Healthz(View):
        async def get(self, request: Request) -> Response:
            """Alive: the worker's event loop answers."""
            return self.json(ALIVE)

    @app.page("/readyz")
    class Readyz(View):
        async def get(self, request: Request) -> Response:
            """Ready: store and Kafka answer and the worker is not too far behind."""
            loop = asyncio.get_running_loop()
            checks = {"store": await loop.run_in_executor(None, check_store)}
            checks.update(await check_kafka())
            status, body = readiness(checks)
            return self.json(body, status=status)
