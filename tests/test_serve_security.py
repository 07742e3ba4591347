"""``byflyt serve`` exposed safely: headers, bearer token, CORS, bounded answers, health.

Real uvicorn on loopback, real HTTP, a real SQLite store; the CLI as a real process; the live
page in a real headless Chromium that must run under the Content-Security-Policy.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from selenium.webdriver.support.ui import WebDriverWait

from byflyt.kafka import create_topics
from byflyt.models.volumes import HourlyVolume
from byflyt.settings import Settings
from byflyt.store import Store
from byflyt.topics import SENSORS_STATUS, VOLUMES_HOURLY
from byflyt.web import create_app
from byflyt.web.security import is_loopback
from tests.browser import chromium
from tests.conftest import REPO, free_port
from tests.helpers import plain_env, wait_until
from tests.web_server import serving

TOKEN = "t0ken-for-the-api-0123456789abcdef"
HOUR = timedelta(hours=1)
NOW_HOUR = datetime(2025, 10, 27, 13, tzinfo=UTC)
PROBLEM = "application/problem+json"


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", serve_topics=False, **values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve-security")
    with Store.from_settings(_settings(root)) as store:
        store.upsert_kommune_hourly(
            [
                HourlyVolume(
                    kommune_nr="3403",
                    mode="bicycle",
                    metric="volume",
                    hour_start=NOW_HOUR - i * HOUR,
                    value=100 + i,
                    coverage=100.0,
                    n_sources=1,
                )
                for i in range(3)
            ]
        )
    return root


@pytest.fixture(scope="module")
def open_url(data_dir: Path) -> Iterator[str]:
    with serving(create_app(_settings(data_dir), follow_topics=False)) as url:
        yield url


@pytest.fixture(scope="module")
def token_url(data_dir: Path) -> Iterator[str]:
    settings = _settings(
        data_dir,
        serve_token=SecretStr(TOKEN),
        serve_cors_origins=["https://dash.example.org"],
        serve_max_page_size=1000,
        serve_max_range_days=31,
    )
    with serving(create_app(settings, follow_topics=False)) as url:
        yield url


def _problem(answer: httpx.Response, status: int) -> dict[str, object]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    body: dict[str, object] = answer.json()
    assert body["status"] == status
    return body


# -- headers ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    ["/", "/static/live.js", "/api/v1/regions", "/api/v1/nothing", "/healthz", "/openapi.json"],
)
def test_every_answer_has_the_security_headers(open_url: str, path: str) -> None:
    answer = httpx.get(open_url + path)
    csp = answer.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in csp
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["x-frame-options"] == "DENY"


class _Inline(HTMLParser):
    """Collects what a strict CSP would block: inline scripts, handlers and styles."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self._in_script = True
        if tag == "style":
            self.found.append("<style>")
        self.found += [f"{tag} {n}" for n in names if n == "style" or n.startswith("on")]

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.found.append(f"inline script {data.strip()[:40]}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


def test_the_page_has_no_inline_script_or_style(open_url: str) -> None:
    template = resources.files("byflyt.web").joinpath("static/live.html").read_text("utf-8")
    page = httpx.get(open_url + "/?region=mjosbyen&lang=en").text
    for html in (template, page):
        parser = _Inline()
        parser.feed(html)
        assert parser.found == []
    assert '<script src="/static/live.js"></script>' in page


@pytest.mark.browser
def test_the_live_page_runs_under_its_csp_in_chromium(open_url: str) -> None:
    with chromium() as driver:
        driver.get(f"{open_url}/?region=mjosbyen")
        # live.js filled the table from /live/state.json: the script ran and could connect.
        WebDriverWait(driver, 30, poll_frequency=0.2).until(
            lambda d: (
                "101"
                in d.execute_script("return document.querySelector('#volumes tbody').textContent")
            )
        )
        loaded = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert all(name.startswith(open_url) for name in loaded)
        # An inline script planted now must be refused by the policy the page was served with.
        driver.execute_script(
            "window.__blocked = 'no';"
            "document.addEventListener('securitypolicyviolation', () => window.__blocked = 'yes');"
            "const s = document.createElement('script'); s.textContent = 'window.__ran = 1';"
            "document.body.appendChild(s);"
        )
        WebDriverWait(driver, 10).until(lambda d: d.execute_script("return window.__blocked"))
        assert driver.execute_script("return window.__blocked") == "yes"
        assert driver.execute_script("return window.__ran === undefined")


def test_docs_admit_only_their_own_inline_script(open_url: str) -> None:
    answer = httpx.get(open_url + "/docs")
    assert answer.status_code == 200
    csp = answer.headers["content-security-policy"]
    assert "'unsafe-inline'" not in csp
    assert re.search(
        r"script-src https://cdn\.jsdelivr\.net 'sha256-[A-Za-z0-9+/=]+'$", csp.split(";")[1]
    )
    assert "frame-ancestors 'none'" in csp


# -- token and CORS --------------------------------------------------------------------------
def test_api_needs_the_bearer_token_when_one_is_set(token_url: str) -> None:
    url = token_url + "/api/v1/regions"
    missing = httpx.get(url)
    body = _problem(missing, 401)
    assert "BYFLYT_SERVE_TOKEN" in str(body["detail"])
    assert missing.headers["www-authenticate"].startswith("Bearer")
    _problem(httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}x"}), 401)
    _problem(httpx.get(url, headers={"Authorization": f"Basic {TOKEN}"}), 401)
    good = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert good.status_code == 200
    assert "mjosbyen" in {r["key"] for r in good.json()["items"]}
    # The page, its state and the probes stay open; the token never shows in an answer.
    for path in ("/", "/live/state.json", "/healthz", "/readyz", "/openapi.json"):
        answer = httpx.get(token_url + path)
        assert answer.status_code == 200, path
        assert TOKEN not in answer.text
    schemes = httpx.get(token_url + "/openapi.json").json()["components"]["securitySchemes"]
    assert [s["scheme"] for s in schemes.values()] == ["bearer"]


def test_no_cors_unless_configured(open_url: str, token_url: str) -> None:
    origin = {"Origin": "https://dash.example.org"}
    plain = httpx.get(open_url + "/api/v1/regions", headers=origin)
    assert plain.status_code == 200
    assert not [h for h in plain.headers if h.startswith("access-control-")]
    preflight = httpx.options(
        token_url + "/api/v1/regions",
        headers={**origin, "Access-Control-Request-Method": "GET"},
    )
    assert preflight.headers["access-control-allow-origin"] == "https://dash.example.org"
    assert "POST" not in preflight.headers["access-control-allow-methods"]
    allowed = httpx.get(
        token_url + "/api/v1/regions", headers={**origin, "Authorization": f"Bearer {TOKEN}"}
    )
    assert allowed.headers["access-control-allow-origin"] == "https://dash.example.org"
    other = httpx.get(
        token_url + "/api/v1/regions",
        headers={"Origin": "https://evil.example", "Authorization": f"Bearer {TOKEN}"},
    )
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(
    ("origins", "accepted"),
    [('["https://a.example:8443"]', True), ('["*"]', False), ('["a.example"]', False)],
)
def test_cors_origins_are_checked_at_start(origins: str, accepted: bool) -> None:
    from byflyt.errors import ConfigError
    from byflyt.settings import load_settings

    env = {"BYFLYT_SERVE_CORS_ORIGINS": origins}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        if accepted:
            assert load_settings().serve_cors_origins == ["https://a.example:8443"]
        else:
            with pytest.raises(ConfigError, match="BYFLYT_SERVE_CORS_ORIGINS"):
                load_settings()
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# -- bounded answers -------------------------------------------------------------------------
def test_time_range_and_page_size_are_bounded(open_url: str, token_url: str) -> None:
    hourly = open_url + "/api/v1/hourly"
    year = httpx.get(hourly, params={"from": "2024-01-01", "to": "2025-01-01"})  # 366 days
    assert year.status_code == 200
    longer = httpx.get(hourly, params={"from": "2024-01-01", "to": "2025-01-02"})
    body = _problem(longer, 400)
    assert body["errors"] == [
        {
            "parameter": "to",
            "message": "[2024-01-01, 2025-01-02) is longer than 366 days "
            "(BYFLYT_SERVE_MAX_RANGE_DAYS); ask for the range in parts",
        }
    ]
    huge = httpx.get(hourly, params={"from": "1900-01-01", "to": "9999-01-01"})
    _problem(huge, 400)
    too_many = httpx.get(open_url + "/api/v1/points", params={"limit": 10_001})
    assert _problem(too_many, 400)["errors"][0]["parameter"] == "limit"  # type: ignore[index]
    assert httpx.get(open_url + "/api/v1/points", params={"limit": 10_000}).status_code == 200

    auth = {"Authorization": f"Bearer {TOKEN}"}
    narrow = token_url + "/api/v1/hourly"
    month = {"from": "2025-10-01", "to": "2025-11-01"}
    assert httpx.get(narrow, params=month, headers=auth).status_code == 200
    _problem(httpx.get(narrow, params={**month, "to": "2025-11-02"}, headers=auth), 400)
    _problem(httpx.get(narrow, params={**month, "limit": 1001}, headers=auth), 400)
    spec = httpx.get(token_url + "/openapi.json").json()
    limit = next(
        p for p in spec["paths"]["/api/v1/hourly"]["get"]["parameters"] if p["name"] == "limit"
    )
    assert limit["schema"]["maximum"] == 1000


# -- health ----------------------------------------------------------------------------------
def test_serve_health_and_readiness(open_url: str, data_dir: Path) -> None:
    assert httpx.get(open_url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(open_url + "/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["reasons"] == []
    assert body["checks"]["store"]["ok"] is True
    assert "kafka" not in body["checks"]  # --no-topics: serve does not use Kafka


@pytest.mark.kafka
def test_serve_is_ready_once_it_follows_the_topics(
    settings_factory: Callable[..., Settings], data_dir: Path
) -> None:
    settings = settings_factory(data_dir=data_dir / "data", serve_topics=True)
    with serving(create_app(settings, follow_topics=True)) as url:
        assert httpx.get(url + "/healthz").status_code == 200
        # The topics do not exist yet: alive, not ready, and the body says why.
        answer = httpx.get(url + "/readyz")
        assert answer.status_code == 503
        body = answer.json()
        assert body["status"] == "not ready"
        assert body["checks"]["store"]["ok"] is True
        assert body["checks"]["kafka"]["ok"] is False
        assert [r.split(":")[0] for r in body["reasons"]] == ["kafka"]

        create_topics(settings, [VOLUMES_HOURLY, SENSORS_STATUS])

        def readyz() -> tuple[int, str]:
            answer = httpx.get(url + "/readyz")
            return answer.status_code, answer.text

        _, text = wait_until(
            readyz,
            60,
            "serve to be ready once the topics exist",
            until=lambda answer: answer[0] == 200,
            every=0.5,
        )
        checks = json.loads(text)["checks"]
        assert checks["kafka"]["ok"] is True
        assert checks["lag"] == {
            "ok": True,
            "detail": "0 records behind",
            "records": 0,
            "max": settings.ready_max_lag,
        }


# -- the command: loopback by default --------------------------------------------------------
def _serve(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "byflyt", "serve", "--no-topics", *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _first_line(proc: subprocess.Popen[str], port: int) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    wait_until(
        lambda: httpx.get(f"http://127.0.0.1:{port}/healthz").status_code,
        30,
        f"serve to answer /healthz with 200 after printing {line!r}",
        until=lambda status: status == 200,
        retry_on=(httpx.TransportError,),
    )
    return line


def test_serve_beyond_loopback_needs_a_token_or_public(data_dir: Path) -> None:
    assert [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost")] == [True] * 3
    assert [is_loopback(h) for h in ("0.0.0.0", "192.168.1.10", "example.org")] == [False] * 3
    env = plain_env()
    env["BYFLYT_DATA_DIR"] = str(data_dir / "data")

    refused = _serve(env, "--host", "0.0.0.0", "--port", str(free_port()))
    _, err = refused.communicate(timeout=60)
    assert refused.returncode == 2
    assert len(err.strip().splitlines()) == 1
    for named in ("BYFLYT_SERVE_HOST", "BYFLYT_SERVE_TOKEN", "--public"):
        assert named in err

    for extra_env, args, says in [
        ({}, [], "loopback only"),
        ({"BYFLYT_SERVE_TOKEN": TOKEN}, ["--host", "0.0.0.0"], "bearer token"),
        ({}, ["--host", "0.0.0.0", "--public"], "PUBLIC"),
    ]:
        port = free_port()
        proc = _serve({**env, **extra_env}, "--port", str(port), *args)
        try:
            line = _first_line(proc, port)
            assert says in line
            assert TOKEN not in line
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
            assert TOKEN.encode() not in cmdline
        finally:
            proc.terminate()
            proc.communicate(timeout=30)
