"""What keeps ``byflyt serve`` safe to expose: headers, the API's bearer token, CORS, /docs.

Every answer carries a strict Content-Security-Policy (scripts, styles and data only from this
origin, no inline script, no framing), ``X-Content-Type-Options: nosniff``, a ``no-referrer``
policy and ``X-Frame-Options: DENY``. ``/api/v1`` needs ``Authorization: Bearer <token>``
when ``BYFLYT_SERVE_TOKEN`` is set (compared in constant time). Browsers on other origins may
read the API only when ``BYFLYT_SERVE_CORS_ORIGINS`` lists them. ``/docs`` (Swagger UI from
its CDN) gets a policy of its own that admits exactly its one inline script, by hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from byflyt.settings import Settings
from byflyt.web.problems import Problem

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
UNAUTHORIZED = "urn:byflyt:problem:unauthorized"
_CDN = "https://cdn.jsdelivr.net"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)

_bearer = HTTPBearer(auto_error=False, description="BYFLYT_SERVE_TOKEN")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name to bind) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name may resolve to anything: treat it as beyond loopback


def token_checker(settings: Settings) -> Callable[..., None]:
    """A dependency that admits a request with the configured bearer token (or any, unset)."""
    token = settings.serve_token
    expected = token.get_secret_value().encode() if token is not None else None

    def check(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if expected is None:
            return
        given = credentials.credentials.encode() if credentials is not None else b""
        if not hmac.compare_digest(given, expected):
            raise Problem(
                401,
                "Unauthorized",
                "the API needs the header Authorization: Bearer <BYFLYT_SERVE_TOKEN>",
                kind=UNAUTHORIZED,
                headers={"WWW-Authenticate": 'Bearer realm="byflyt"'},
            )

    return check


def install_security(app: FastAPI, settings: Settings) -> None:
    """Security headers on every answer, CORS when configured, and a /docs page with its CSP."""

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    if settings.serve_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.serve_cors_origins,
            allow_methods=["GET"],
            allow_headers=["Authorization", "Accept"],
            expose_headers=["Link", "X-Total-Count"],
        )

    docs = get_swagger_ui_html(openapi_url="/openapi.json", title="byflyt API")
    body = bytes(docs.body).decode()
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in _INLINE_SCRIPT.findall(body)
    )
    docs_csp = (
        f"default-src 'none'; script-src {_CDN} {hashes}; style-src {_CDN}; "
        "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return HTMLResponse(body, headers={"Content-Security-Policy": docs_csp})
