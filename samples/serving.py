"""What the sample servers share: HTTP on a background thread, and serving until Ctrl-C.

:class:`BackgroundServer` binds, serves its :class:`QuietHandler` subclass on a daemon thread and
stops (a context manager); the handler asks ``self.server.owner``, the sample server, for its
answers and sends them with :meth:`QuietHandler.reply`. :func:`server_arguments` and
:func:`serve_until_interrupted` make a sample's ``python -m`` entry point.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self

log = logging.getLogger(__name__)


class SampleHTTPServer(ThreadingHTTPServer):
    """The socket server of a sample server, its ``owner``."""

    owner: Any


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs at debug level and shrugs off a client gone too soon."""

    server: SampleHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are logged at debug level, not on stderr."""
        log.debug("%s " + format, self.address_string(), *args)

    def reply(self, status: int, body: bytes, headers: dict[str, str], content_type: str) -> None:
        """Send one answer (no body to a ``HEAD``)."""
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            log.debug("client went away before the answer (timeout?)")


class BackgroundServer:
    """Serves :attr:`handler` on a daemon thread; a context manager.

    The handler finds this object as ``self.server.owner``.
    """

    handler: ClassVar[type[QuietHandler]]

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._address = (host, port)
        self._http: SampleHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://host:port/`` while serving."""
        if self._http is None:
            raise RuntimeError(f"the {type(self).__name__} is not started")
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}/"

    @property
    def url(self) -> str:
        """The URL clients are given (the base URL unless a server says otherwise)."""
        return self.base_url

    def start(self) -> str:
        """Bind, serve on a daemon thread and return :attr:`url`."""
        if self._http is not None:
            raise RuntimeError(f"the {type(self).__name__} is already started")
        self._http = SampleHTTPServer(self._address, self.handler)
        self._http.owner = self
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},  # how long ``stop`` may wait for the loop to notice
            name=type(self).__name__,
            daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


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


def server_arguments(
    module: str, description: str, port: int, notice: str
) -> argparse.ArgumentParser:
    """A sample server's command line: ``--host``, ``--port`` (default ``port``), ``--page-size``.

    ``module`` is the one run with ``python -m``; ``notice`` ends the description.
    """
    parser = argparse.ArgumentParser(
        prog=f"python -m byflyt.samples.{module}", description=f"{description} {notice}"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port, help="0 picks a free port")
    parser.add_argument("--page-size", type=int, default=100)
    return parser


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
