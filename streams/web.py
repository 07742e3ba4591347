"""The worker's web views: Prometheus ``/metrics`` on the faust web server."""

from __future__ import annotations

import faust
from faust.web import Request, Response, View
from prometheus_client import CollectorRegistry, generate_latest

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
