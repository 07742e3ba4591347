"""A small threaded HTTP server for JSON APIs, with a request log and injectable faults.

The Trafikkdata, Eco-Counter and Telraam sample servers subclass :class:`JsonServer` and
implement :meth:`JsonServer.answer`; faults queued with :meth:`JsonServer.inject` (a status such
as 429 with ``Retry-After``, a delay, truncated JSON, another answer such as a GraphQL error)
are served instead of the next answers.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from byflyt.samples.serving import BackgroundServer, QuietHandler


@dataclass(frozen=True)
class Fault:
    """A fault served instead of (or before) the next request's normal answer."""

    kind: Literal["status", "delay", "malformed_json", "reply"]
    code: int = 200
    retry_after: int | None = None
    seconds: float = 0.0
    body: Any = None

    @classmethod
    def status(cls, code: int, retry_after: int | None = None) -> Fault:
        """Answer with this HTTP status (and ``Retry-After`` when given)."""
        return cls("status", code=code, retry_after=retry_after)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Wait this long, then answer normally."""
        return cls("delay", seconds=seconds)

    @classmethod
    def malformed_json(cls) -> Fault:
        """Answer HTTP 200 with truncated JSON."""
        return cls("malformed_json")

    @classmethod
    def reply(cls, code: int, body: Any) -> Fault:
        """Answer with this status and JSON body instead of the normal answer."""
        return cls("reply", code=code, body=body)


@dataclass(frozen=True)
class Request:
    """A request as received: path without query, query lists, lower-case headers, body."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def arg(self, name: str) -> str | None:
        """The first value of query argument ``name``."""
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        """The body as JSON (None when it is not)."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


Answer = tuple[int, Any]
"""An HTTP status and a JSON-serialisable body (``bytes``: plain text, sent as they are)."""

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


class _Handler(QuietHandler):
    # HTTP/1.0: one request per connection, so nothing is left connected after ``stop``.
    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        parts = urlsplit(self.path)
        request = Request(
            self.command,
            parts.path,
            parse_qs(parts.query, keep_blank_values=True),
            {k.lower(): v for k, v in self.headers.items()},
            self.rfile.read(length) if length > 0 else b"",
        )
        owner = self.server.owner
        owner._record(request)
        fault = owner._next_fault() if owner.takes_fault(request) else None
        if fault is not None and fault.kind == "delay":
            owner._stopping.wait(fault.seconds)
        if fault is not None and fault.kind == "status":
            extra = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            self._send(fault.code, json.dumps({"message": f"HTTP {fault.code}"}).encode(), extra)
        elif fault is not None and fault.kind == "malformed_json":
            self._send(200, owner.truncated_body, {})
        elif fault is not None and fault.kind == "reply":
            self._send(fault.code, json.dumps(fault.body, ensure_ascii=False).encode(), {})
        else:
            status, payload = owner.answer(request)
            if isinstance(payload, bytes):
                self._send(status, payload, {}, TEXT)
            else:
                self._send(status, json.dumps(payload, ensure_ascii=False).encode(), {})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

    def _send(
        self, status: int, body: bytes, headers: dict[str, str], content_type: str = JSON
    ) -> None:
        self.reply(status, body, headers, content_type)


class JsonServer(BackgroundServer):
    """Serves :meth:`answer` on a background thread; a context manager."""

    handler = _Handler

    truncated_body = b'[{"date": "2025-10-2'
    """What a ``malformed_json`` fault answers: the API's shape, cut off."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self._requests: list[Request] = []
        self._stopping = threading.Event()

    def answer(self, request: Request) -> Answer:
        """The status and JSON body for ``request`` (subclasses implement the API)."""
        raise NotImplementedError

    def takes_fault(self, request: Request) -> bool:
        """Whether ``request`` takes the next queued fault (every request, unless overridden)."""
        return True

    @property
    def requests(self) -> list[Request]:
        """A copy of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def inject(self, *faults: Fault) -> None:
        """Queue faults; each request takes the oldest one."""
        with self._lock:
            self._faults.extend(faults)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _record(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    def serve_until_stopped(self, label: str) -> None:
        """Start, say where on stdout, and serve until SIGTERM or Ctrl-C (a sample's ``main``)."""
        self.start()
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            sys.stdout.write(f"{label} on {self.url}\n")
            sys.stdout.flush()
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def start(self) -> str:
        """Bind, serve on a daemon thread and return the base URL."""
        self._stopping.clear()
        return super().start()

    def stop(self) -> None:
        """Stop serving (cutting injected delays short) and release the port."""
        self._stopping.set()
        super().stop()


def serve_main(
    argv: Sequence[str] | None,
    server: Callable[..., JsonServer],
    dataset: Callable[[], Any],
    port: int,
    label: str,
    description: str,
) -> None:
    """A sample server's ``main``: ``--port`` (default ``port``), then serve until stopped.

    ``server(dataset(), port=…)`` is the server; ``label`` names it in the line saying where.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=port)
    args = parser.parse_args(argv)
    server(dataset(), port=args.port).serve_until_stopped(label)
