"""A local server that answers like Entur's SIRI REST endpoint, from a :class:`SiriDay`.

``GET …/et`` and ``GET …/vm`` (any path prefix, e.g. ``/realtime/v1/rest/et``) with
``datasetId`` (only ``INN`` has data; any other dataset gets an empty delivery, as Entur does)
and ``requestorId``. Time on the server is the day's ticks: a requestor's first answer is the
full state at the first tick; each later answer moves that requestor one tick on and holds
only the journeys that changed (VM: the vehicles of that tick). An answer longer than
``page_size`` elements is paged: ``MoreData`` true until the requestor has had it all, the next
request gets the next page. Without a ``requestorId`` every request gets the full state of the
last tick. Past ``rate_per_minute`` requests per client (``ET-Client-Name``) within a sliding
``window`` the answer is 429 with ``Retry-After``. Faults can be scheduled for the n-th request
of a kind: an ``ErrorCondition`` (the requestor does not move on), an HTML error page, malformed
XML or a bare status. gzip when the client accepts it. Run it standalone with
``python -m byflyt.samples.siri_server``.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from byflyt.samples.serving import (
    BackgroundServer,
    QuietHandler,
    serve_until_interrupted,
    server_arguments,
)
from byflyt.samples.siri import SYNTHETIC_NOTICE, SiriDay, answer, error_answer, synthetic_day

XML = "application/xml; charset=utf-8"
HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>502 Bad Gateway</h1></body></html>\n"
)


@dataclass(frozen=True)
class Fault:
    """What the server answers instead of the normal answer to one request."""

    kind: Literal["error_condition", "html", "malformed", "status"]
    code: int = 200
    retry_after: int | None = None
    text: str = "Too many subscriptions for this requestor (synthetic)"


@dataclass(frozen=True)
class RecordedRequest:
    """A request the server received (header names in lower case)."""

    path: str
    params: dict[str, str]
    headers: dict[str, str]
    status: int


@dataclass
class _Requestor:
    tick: int = -1
    """The last tick answered (-1: none yet)."""
    queue: deque[bytes] = field(default_factory=deque)
    response_at: Any = None


class _Handler(QuietHandler):
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        headers = {name.lower(): value for name, value in self.headers.items()}
        kind = url.path.rstrip("/").rsplit("/", 1)[-1]
        owner: SiriServer = self.server.owner
        status, body, content_type, extra = owner.respond(kind, params, headers)
        owner.record(RecordedRequest(url.path, params, headers, status))
        if "gzip" in headers.get("accept-encoding", "") and status == 200:
            body = gzip.compress(body, mtime=0)
            extra = {**extra, "Content-Encoding": "gzip"}
        self.reply(status, body, extra, content_type)


class SiriServer(BackgroundServer):
    """The day served over HTTP on a background thread; a context manager."""

    handler = _Handler

    def __init__(
        self,
        day: SiriDay,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        page_size: int = 100,
        rate_per_minute: int = 4,
        window: float = 60.0,
        dataset: str = "INN",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {page_size}")
        self.day = day
        self.page_size = page_size
        self.rate_per_minute = rate_per_minute
        self.window = window
        self.dataset = dataset
        self.clock = clock
        super().__init__(host, port)
        self._lock = threading.Lock()
        self._requestors: dict[tuple[str, str], _Requestor] = {}
        self._faults: dict[tuple[str, int], Fault] = {}
        self._counts: dict[str, int] = defaultdict(int)
        self._clients: dict[str, deque[float]] = defaultdict(deque)
        self._requests: list[RecordedRequest] = []

    # -- behaviour ---------------------------------------------------------------------------
    def schedule(self, kind: str, request: int, fault: Fault) -> None:
        """Answer the ``request``-th (1-based) request for ``kind`` (et, vm) with ``fault``."""
        with self._lock:
            self._faults[(kind, request)] = fault

    def done(self, requestor_id: str, kind: str = "et") -> bool:
        """Whether ``requestor_id`` has had every tick and every page of ``kind``."""
        with self._lock:
            state = self._requestors.get((kind, requestor_id))
            return state is not None and state.tick == len(self.day.ticks) - 1 and not state.queue

    def respond(
        self, kind: str, params: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, bytes, str, dict[str, str]]:
        """Status, body, content type and extra headers for one GET."""
        if kind not in ("et", "vm"):
            return 404, b"Not found\n", "text/plain", {}
        client = headers.get("et-client-name", "anonymous")
        with self._lock:
            now = self.clock()
            recent = self._clients[client]
            while recent and recent[0] <= now - self.window:
                recent.popleft()
            if len(recent) >= self.rate_per_minute:
                wait = max(1, round(recent[0] + self.window - now + 0.5))
                return 429, b"Rate limit exceeded\n", "text/plain", {"Retry-After": str(wait)}
            recent.append(now)
            self._counts[kind] += 1
            fault = self._faults.pop((kind, self._counts[kind]), None)
            if fault is not None:
                return self._fault(kind, fault)
            if params.get("datasetId") != self.dataset:
                return 200, answer(kind, [], self.day.ticks[-1]), XML, {}
            return 200, self._page(kind, params.get("requestorId") or ""), XML, {}

    def _fault(self, kind: str, fault: Fault) -> tuple[int, bytes, str, dict[str, str]]:
        if fault.kind == "error_condition":
            return 200, error_answer(kind, self.day.ticks[0], fault.text), XML, {}
        if fault.kind == "html":
            return 200, HTML_PAGE, "text/html; charset=utf-8", {}
        if fault.kind == "malformed":
            body = answer(kind, [], self.day.ticks[0])
            return 200, body[: len(body) // 2], XML, {}
        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        return fault.code, f"HTTP {fault.code}\n".encode(), "text/plain", headers

    def _elements(self, kind: str, tick: int, full: bool) -> list[bytes]:
        if kind == "vm":
            return list(self.day.vm[tick])
        return list(self.day.et[tick].values()) if full else self.day.changes(tick)

    def _page(self, kind: str, requestor_id: str) -> bytes:
        last = len(self.day.ticks) - 1
        if not requestor_id:
            return answer(kind, self._elements(kind, last, True), self.day.ticks[last])
        state = self._requestors.setdefault((kind, requestor_id), _Requestor())
        if not state.queue:
            if state.tick < 0:
                state.tick = 0
                state.queue.extend(self._elements(kind, 0, True))
            elif state.tick < last:
                state.tick += 1
                state.queue.extend(self._elements(kind, state.tick, False))
        page = [state.queue.popleft() for _ in range(min(self.page_size, len(state.queue)))]
        return answer(kind, page, self.day.ticks[state.tick], more_data=bool(state.queue))

    # -- plumbing ----------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far."""
        with self._lock:
            return list(self._requests)

    def record(self, request: RecordedRequest) -> None:
        """Log a request (called by the handler)."""
        with self._lock:
            self._requests.append(request)

    @property
    def url(self) -> str:
        """The endpoint, e.g. ``http://127.0.0.1:8124/realtime/v1/rest``."""
        return f"{self.base_url}realtime/v1/rest"


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the synthetic day until Ctrl-C or SIGTERM; writes the endpoint on stdout."""
    parser = server_arguments(
        "siri_server", "Local Entur-like SIRI REST endpoint.", 8124, SYNTHETIC_NOTICE
    )
    parser.add_argument("--rate-per-minute", type=int, default=4)
    args = parser.parse_args(argv)
    server = SiriServer(
        synthetic_day(),
        host=args.host,
        port=args.port,
        page_size=args.page_size,
        rate_per_minute=args.rate_per_minute,
    )
    server.schedule("et", 3, Fault("error_condition"))
    serve_until_interrupted(server, SYNTHETIC_NOTICE)


if __name__ == "__main__":
    main()
