"""HTTP classification and back-off: a table of outcomes, bounds of the waits, real sockets."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from byflyt.connectors.http import (
    Backoff,
    Classification,
    HTTPRetriableError,
    SourceError,
    classify,
    parse_retry_after,
    send,
    send_streaming,
)
from tests.conftest import free_port
from tests.helpers import QuietHandler, http_server

NOW = datetime(2025, 10, 26, 1, 30, tzinfo=UTC)
URL = "https://trafikkdata-api.atlas.vegvesen.no/"
REQUEST = httpx.Request("POST", URL)


def response(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=REQUEST)


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (response(200), Classification("ok", 200)),
        (response(204), Classification("ok", 204)),
        (response(400), Classification("fatal", 400, "4xx")),
        (response(401), Classification("fatal", 401, "4xx")),
        (response(403), Classification("fatal", 403, "4xx")),
        (response(404), Classification("fatal", 404, "4xx")),
        (response(410), Classification("fatal", 410, "4xx")),
        (response(301, Location="https://elsewhere/"), Classification("fatal", 301, "3xx")),
        (response(408), Classification("retriable", 408, "4xx")),
        (response(429), Classification("retriable", 429, "4xx")),
        (response(429, **{"Retry-After": "7"}), Classification("retriable", 429, "4xx", 7.0)),
        (
            response(429, **{"Retry-After": "Sun, 26 Oct 2025 01:31:00 GMT"}),
            Classification("retriable", 429, "4xx", 60.0),
        ),
        (response(500), Classification("retriable", 500, "5xx")),
        (response(502), Classification("retriable", 502, "5xx")),
        (response(503), Classification("retriable", 503, "5xx")),
        (response(503, **{"Retry-After": "120"}), Classification("retriable", 503, "5xx", 120.0)),
        (response(504), Classification("retriable", 504, "5xx")),
        (
            httpx.ReadTimeout("timed out", request=REQUEST),
            Classification("retriable", None, "timeout"),
        ),
        (
            httpx.ConnectTimeout("timed out", request=REQUEST),
            Classification("retriable", None, "timeout"),
        ),
        (
            httpx.ConnectError("refused", request=REQUEST),
            Classification("retriable", None, "network"),
        ),
        (
            httpx.RemoteProtocolError("reset", request=REQUEST),
            Classification("retriable", None, "network"),
        ),
        (httpx.UnsupportedProtocol("ftp", request=REQUEST), Classification("fatal")),
        (
            httpx.HTTPStatusError("bad", request=REQUEST, response=response(503)),
            Classification("retriable", 503, "5xx"),
        ),
    ],
    ids=lambda v: str(v.status_code) if isinstance(v, httpx.Response) else type(v).__name__,
)
def test_classification_table(
    outcome: httpx.Response | httpx.HTTPError, expected: Classification
) -> None:
    got = classify(outcome, now=NOW)
    assert (got.verdict, got.status, got.status_class, got.retry_after) == (
        expected.verdict,
        expected.status,
        expected.status_class,
        expected.retry_after,
    )


def test_fatal_classifications_say_what_to_do() -> None:
    assert "check --endpoint" in classify(response(404)).detail
    assert "check --endpoint" in classify(response(410)).detail
    assert "BYFLYT_CLIENT_NAME" in classify(response(403)).detail
    assert "https://elsewhere/" in classify(response(301, Location="https://elsewhere/")).detail


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("0", 0.0),
        ("Sun, 26 Oct 2025 01:31:00 GMT", 60.0),
        ("Sunday, 26-Oct-25 01:30:30 GMT", 30.0),
        ("Sun, 26 Oct 2025 01:00:00 GMT", 0.0),  # in the past: retry now
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_as_seconds_or_http_date(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


def test_backoff_is_full_jitter_exponential_and_capped() -> None:
    backoff = Backoff(base=0.5, cap=8.0, attempts=6)
    rng = random.Random(1)
    for retry, ceiling in enumerate([0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]):
        assert backoff.ceiling(retry) == ceiling
        waits = [backoff.delay(retry, rng=rng) for _ in range(400)]
        assert all(0.0 <= w <= ceiling for w in waits)
        assert max(waits) > 0.8 * ceiling  # full jitter spans the whole range
        assert min(waits) < 0.2 * ceiling
    assert backoff.ceiling(10_000) == 8.0


def test_backoff_honours_retry_after_up_to_its_cap() -> None:
    backoff = Backoff(base=0.5, cap=8.0, max_retry_after=300.0)
    rng = random.Random(2)
    assert all(backoff.delay(0, retry_after=5.0, rng=rng) == 5.0 for _ in range(50))
    assert all(5.0 <= backoff.delay(6, retry_after=5.0, rng=rng) <= 8.0 for _ in range(50))
    assert backoff.delay(0, retry_after=86_400.0, rng=rng) == 300.0


@pytest.mark.parametrize("bad", [{"base": 0.0}, {"base": 2.0, "cap": 1.0}, {"attempts": 0}])
def test_backoff_refuses_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="invalid back-off"):
        Backoff(**bad)  # type: ignore[arg-type]


class _Answers(QuietHandler):
    """``/<status>`` answers with that status; ``/cut`` ends its body a tenth of the way in."""

    def do_POST(self) -> None:
        if self.path == "/cut":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"<Siri>" + b" " * 94)
            return
        status = int(self.path.strip("/"))
        self.reply(status, headers={"Retry-After": "2"} if status == 429 else {})


@pytest.fixture
def answers() -> Iterator[str]:
    with http_server(_Answers) as url:
        yield url


def test_send_over_real_sockets(answers: str) -> None:
    with httpx.Client(timeout=2.0) as client:
        assert send(client, "POST", f"{answers}/200").status_code == 200
        with pytest.raises(SourceError, match=r"HTTP 404 .*check --endpoint") as fatal:
            send(client, "POST", f"{answers}/404")
        assert (fatal.value.status, fatal.value.status_class) == (404, "4xx")
        assert fatal.value.url == f"{answers}/404"
        with pytest.raises(HTTPRetriableError) as limited:
            send(client, "POST", f"{answers}/429")
        assert (limited.value.status, limited.value.retry_after) == (429, 2.0)
        with pytest.raises(HTTPRetriableError, match="HTTP 503") as unavailable:
            send(client, "POST", f"{answers}/503")
        assert unavailable.value.status_class == "5xx"
        with pytest.raises(HTTPRetriableError) as refused:
            send(client, "POST", f"http://127.0.0.1:{free_port()}/")
        assert refused.value.status_class == "network"
        assert isinstance(refused.value.__cause__, httpx.ConnectError)


def _read_all(client: httpx.Client, url: str) -> bytes:
    with send_streaming(client, "POST", url) as response:
        return b"".join(response.iter_bytes())


def test_send_streaming_fails_as_send_does_and_while_the_body_streams(answers: str) -> None:
    with httpx.Client(timeout=2.0) as client:
        with send_streaming(client, "POST", f"{answers}/200") as response:
            assert response.status_code == 200
        with pytest.raises(HTTPRetriableError) as limited:
            _read_all(client, f"{answers}/429")
        assert (limited.value.status, limited.value.retry_after) == (429, 2.0)
        with pytest.raises(SourceError, match=r"HTTP 404 .*check --endpoint"):
            _read_all(client, f"{answers}/404")
        with pytest.raises(HTTPRetriableError) as cut:  # the status was 200, the body fell short
            _read_all(client, f"{answers}/cut")
        assert (cut.value.status_class, cut.value.url) == ("network", f"{answers}/cut")
        assert isinstance(cut.value.__cause__, httpx.RemoteProtocolError)
