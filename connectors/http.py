"""HTTP for connectors: one function classifies every response or failure, one backs off.

:func:`classify` decides, from a response or an httpx exception, whether a request worked, may
work if tried again (timeouts, connection errors, 408, 429, 5xx — with ``Retry-After`` read as
seconds or as an HTTP date) or never will (any other 4xx, a redirect, an unsupported URL).
:func:`send` (and :func:`send_streaming`, for a body parsed as it arrives) applies it at the
boundary, turning failures into :class:`HTTPRetriableError` or :class:`SourceError` with the URL,
status and status class attached. :class:`Backoff` is exponential back-off with full jitter that
honours the source's ``Retry-After``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx

from byflyt.errors import ByflytError, ConfigError, RetriableError

Verdict = Literal["ok", "retriable", "fatal"]
StatusClass = Literal["3xx", "4xx", "5xx", "timeout", "network", "invalid_body", "graphql"]
"""Metric label of a failure: an HTTP status class, a transport failure, or an unusable 200."""

_RETRIABLE_4XX = frozenset({408, 429})
_HINTS = {
    400: "the request is wrong: a bug in the connector or a change in the source's API",
    401: "the source wants credentials: check the client settings",
    403: "the source refuses this client: check BYFLYT_CLIENT_NAME and the source's terms",
    404: "nothing answers at this URL: check --endpoint",
    405: "the URL does not take this method: check --endpoint",
    410: "this URL or method is gone: check --endpoint",
}


@dataclass(frozen=True)
class Classification:
    """What a response or failure means for the caller.

    ``status_class`` is the bounded metric label (None when the request worked); ``retry_after``
    is the wait in seconds the source asked for, when it asked.
    """

    verdict: Verdict
    status: int | None = None
    status_class: StatusClass | None = None
    retry_after: float | None = None
    detail: str = ""


class SourceError(ByflytError):
    """A request the source refused for good: retrying will not help, the item fails."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        status_class: StatusClass | None = None,
    ) -> None:
        self.url = url
        self.status = status
        self.status_class = status_class
        super().__init__(message)


class HTTPRetriableError(RetriableError):
    """A transient HTTP failure, with the status class it is counted under."""

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status: int | None,
        status_class: StatusClass,
        retry_after: float | None,
    ) -> None:
        self.status_class = status_class
        super().__init__(message, url=url, status=status, retry_after=retry_after)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; "-0000" parses as naive
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def classify(
    outcome: httpx.Response | httpx.HTTPError, now: datetime | None = None
) -> Classification:
    """Classify a response or an httpx exception as ok, retriable or fatal."""
    if isinstance(outcome, httpx.HTTPStatusError):
        outcome = outcome.response
    if isinstance(outcome, httpx.Response):
        return _classify_status(outcome, now)
    name = type(outcome).__name__
    if isinstance(outcome, httpx.TimeoutException):
        return Classification("retriable", status_class="timeout", detail=f"{name}: {outcome}")
    if isinstance(outcome, httpx.UnsupportedProtocol | httpx.TooManyRedirects):
        return Classification("fatal", detail=f"{name}: {outcome}")
    return Classification("retriable", status_class="network", detail=f"{name}: {outcome}")


def _classify_status(response: httpx.Response, now: datetime | None) -> Classification:
    status = response.status_code
    reason = f"HTTP {status} {response.reason_phrase}".rstrip()
    if 200 <= status < 300:
        return Classification("ok", status=status)
    if status == 429 or status >= 500 or status in _RETRIABLE_4XX:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
        status_class: StatusClass = "5xx" if status >= 500 else "4xx"
        return Classification("retriable", status, status_class, retry_after, reason)
    if 300 <= status < 400:
        where = response.headers.get("Location", "?")
        return Classification("fatal", status, "3xx", detail=f"{reason} to {where}")
    hint = _HINTS.get(status, "the source refused the request")
    return Classification("fatal", status, "4xx", detail=f"{reason}: {hint}")


def send(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    also_ok: Collection[int] = (),
    **kwargs: Any,
) -> httpx.Response:
    """Send a request; a successful response is returned, anything else raised as ours.

    Statuses in ``also_ok`` are returned too (``304 Not Modified`` to a conditional GET).
    Raises :class:`HTTPRetriableError` (back off and retry) or :class:`SourceError` (give up).
    """
    try:
        response = client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise request_error(classify(exc), method, url) from exc
    return _accepted(response, method, url, also_ok)


@contextmanager
def send_streaming(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    also_ok: Collection[int] = (),
    **kwargs: Any,
) -> Iterator[httpx.Response]:
    """:func:`send` for a body read as it arrives: the response, open while the block runs.

    A failure while the body streams in (a timeout, a dropped connection) is raised as a
    failed request is, so a caller that parses as it reads sees the same errors.
    """
    try:
        with client.stream(method, url, **kwargs) as response:
            yield _accepted(response, method, url, also_ok)
    except httpx.HTTPError as exc:
        raise request_error(classify(exc), method, url) from exc


def _accepted(
    response: httpx.Response, method: str, url: str, also_ok: Collection[int]
) -> httpx.Response:
    """``response`` if it worked (or its status is in ``also_ok``), else its error raised."""
    if response.status_code in also_ok:
        return response
    verdict = classify(response)
    if verdict.verdict == "ok":
        return response
    raise request_error(verdict, method, url)


def json_body(response: httpx.Response, method: str, url: str) -> Any:
    """The JSON of a successful ``response``; a body that is not JSON is retriable.

    A proxy's HTML error page with 200, or a truncated answer, is classified ``invalid_body``.
    """
    try:
        return response.json()
    except ValueError as exc:
        raise HTTPRetriableError(
            f"{method} {url}: the answer is not JSON ({exc})",
            url=url,
            status=response.status_code,
            status_class="invalid_body",
            retry_after=None,
        ) from exc


def request_error(
    verdict: Classification, method: str, url: str
) -> HTTPRetriableError | SourceError:
    """The error a request's failing ``verdict`` means: retriable or, otherwise, a source error."""
    message = f"{method} {url}: {verdict.detail}"
    if verdict.verdict == "retriable":
        assert verdict.status_class is not None
        return HTTPRetriableError(
            message,
            url=url,
            status=verdict.status,
            status_class=verdict.status_class,
            retry_after=verdict.retry_after,
        )
    return SourceError(message, url=url, status=verdict.status, status_class=verdict.status_class)


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off with full jitter, capped, honouring the source's ``Retry-After``.

    ``attempts`` is how many times a request is tried in all. Before retry ``n`` (0-based) the
    wait is uniform in ``[0, min(cap, base * 2**n)]``, but never shorter than ``retry_after``
    (itself capped at ``max_retry_after``, so a broken header cannot stall a connector).
    """

    base: float = 1.0
    cap: float = 60.0
    attempts: int = 5
    max_retry_after: float = 900.0

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base or self.attempts < 1:
            raise ValueError(f"invalid back-off {self}: need 0 < base <= cap and attempts >= 1")

    def ceiling(self, retry: int) -> float:
        """The longest jittered wait before retry ``retry`` (0-based)."""
        return min(self.cap, self.base * 2 ** min(retry, 62))

    def delay(
        self, retry: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before retry ``retry`` (0-based)."""
        jittered = (rng or random).uniform(0.0, self.ceiling(retry))
        if retry_after is None:
            return jittered
        return max(min(retry_after, self.max_retry_after), jittered)


def check_endpoint(endpoint: str, example: str) -> str:
    """``endpoint`` if it is an http(s) URL with a host, else a ConfigError on ``--endpoint``."""
    try:
        url = httpx.URL(endpoint) if "://" in endpoint else None
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        problem = f"{endpoint!r} is not an http(s) URL"
        raise ConfigError("--endpoint", problem, f"use e.g. {example}")
    return endpoint


def base_url(endpoint: str, example: str) -> str:
    """:func:`check_endpoint`, ending in ``/`` so that API paths can be appended."""
    checked = check_endpoint(endpoint, example)
    return checked if checked.endswith("/") else checked + "/"


def raw_json(value: Any) -> str:
    """A source's JSON answer (or part of one) as text, for the dead-letter topic's excerpt."""
    return json.dumps(value, ensure_ascii=False, default=str)
