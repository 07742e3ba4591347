"""Serving a sample server from its ``python -m`` entry point until Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from types import TracebackType
from typing import Any, Protocol


class Servable(Protocol):
    """A sample server: started and stopped by ``with``, at ``url`` while it runs."""

    @property
    def url(self) -> str:
        """The base URL the server answers on."""
        ...

    def __enter__(self) -> Any: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


def serve_until_interrupted(server: Servable, notice: str) -> None:
    """Start ``server``, write its URL on stdout and ``notice`` on stderr, serve until stopped."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    with server:
        sys.stdout.write(f"{server.url}\n")
        sys.stdout.flush()
        sys.stderr.write(f"{notice}\nServing until Ctrl-C.\n")
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
