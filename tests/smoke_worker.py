"""A faust worker for the platform smoke test: forwards every record of one topic to another.

Run as ``python tests/smoke_worker.py IN OUT`` with ``BYFLYT_*`` settings in the environment; it
drains (processes everything present, commits, exits 0) through byflyt's own worker machinery.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

import faust

from byflyt.settings import load_settings
from byflyt.streams.worker import run_worker


def forwarder(source: str, target: str) -> Callable[[faust.App, object], None]:
    """A registrar whose agent copies ``source`` to ``target``, uppercasing the value."""

    def register(app: faust.App, _settings: object) -> Callable[[], Awaitable[None]] | None:
        src = app.topic(source, key_serializer="raw", value_serializer="raw", partitions=2)
        dst = app.topic(target, key_serializer="raw", value_serializer="raw", partitions=2)

        @app.agent(src)
        async def forward(stream: faust.StreamT[bytes]) -> None:
            async for event in stream.events():
                await dst.send(key=event.key, value=bytes(event.value).upper())

        return None

    return register


if __name__ == "__main__":
    run_worker(load_settings(), [forwarder(sys.argv[1], sys.argv[2])], drain=True)
