"""``byflyt serve``: one small read-only ASGI app with the live page and the analysts' API.

``/`` is the operators' live page (it polls ``/live/state.json``), ``/api/v1/…`` the API
(:mod:`byflyt.web.api`), ``/openapi.json`` its description. The store is opened when the app
starts; the topic follower (:mod:`byflyt.web.follow`) runs beside it unless switched off.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from html import escape
from importlib import resources
from string import Template
from typing import Any
from urllib.parse import urlencode

from anyio import to_thread
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from byflyt.errors import RetriableError
from byflyt.i18n import Lang, labels
from byflyt.models.kommuner import get_region
from byflyt.settings import Settings
from byflyt.store import Store
from byflyt.streams.health import ALIVE, Check, lag_check, readiness, store_check
from byflyt.web.api import api_router
from byflyt.web.follow import TopicFollower
from byflyt.web.live import LiveView, live_state
from byflyt.web.params import RegionParam, kommuner_for
from byflyt.web.problems import (
    PROBLEM_RESPONSES,
    Problem,
    install_problem_handlers,
    store_unavailable,
)
from byflyt.web.reuse import Reuse
from byflyt.web.security import install_security

STATIC = resources.files("byflyt.web").joinpath("static")
ASSETS = {"live.js": "text/javascript", "live.css": "text/css"}
REQUEST_THREADS = 8
"""Requests answered at once (the rest queue on the event loop). Their work is Python under one
interpreter lock and store reads over at most 15 pooled connections: more threads only wait."""


@dataclass
class Running:
    """What the app holds while it runs."""

    store: Store | None = None
    follower: TopicFollower | None = None

    def open_store(self) -> Store:
        """The store; a 503 while the app is still starting."""
        if self.store is None:
            raise Problem(503, "Starting", "the store is not open yet; retry in a moment")
        return self.store


def create_app(
    settings: Settings, *, follow_topics: bool | None = None, poll_seconds: float | None = None
) -> FastAPI:
    """The app for ``settings``; ``follow_topics`` and ``poll_seconds`` override the settings."""
    running = Running()
    follow = settings.serve_topics if follow_topics is None else follow_topics
    poll = settings.serve_poll_seconds if poll_seconds is None else poll_seconds

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        to_thread.current_default_thread_limiter().total_tokens = REQUEST_THREADS
        running.store = Store.from_settings(settings)
        if follow:
            running.follower = TopicFollower(settings)
            running.follower.start()
        try:
            yield
        finally:
            if running.follower is not None:
                running.follower.stop()
            running.store.close()

    app = FastAPI(
        title="byflyt",
        version="1",
        summary="Hourly cycling and transit volumes per Norwegian kommune: live page and API.",
        description="Read-only. Times are UTC (2025-10-26T01:00:00Z); errors are RFC 7807 "
        "application/problem+json. Data: Statens vegvesen Trafikkdata and Entur (NLOD).",
        lifespan=lifespan,
        docs_url=None,  # served by install_security, with a CSP of its own
        redoc_url=None,
    )
    install_problem_handlers(app)
    install_security(app, settings)
    app.include_router(api_router(settings, running.open_store))
    _problems_in_openapi(app)
    _live_routes(app, settings, running, poll)
    _health_routes(app, settings, running)
    return app


def _live_routes(app: FastAPI, settings: Settings, running: Running, poll: float) -> None:
    """The live page, its state and its assets."""
    # Never longer than the page's poll: each poll of a page sees a state built since its last.
    reuse_state = min(settings.serve_state_reuse_seconds, poll)
    states: Reuse[dict[str, Any]] = Reuse(reuse_state, max_entries=64)

    def view(region: str | None) -> LiveView:
        key = region or settings.region
        chosen = kommuner_for(key, None, settings.regions_file)
        return LiveView(get_region(key, settings.regions_file) if key else None, chosen)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(region: RegionParam = None, lang: Lang = "nb") -> HTMLResponse:
        live = view(region)
        text = labels(lang)
        other: Lang = "en" if lang == "nb" else "nb"
        query = "?" + urlencode({"lang": other, **({"region": region} if region else {})})
        template = Template(STATIC.joinpath("live.html").read_text("utf-8"))
        config = {"labels": text, "poll_ms": int(poll * 1000), "region": region or ""}
        values = {key: escape(value) for key, value in text.items()}
        values.update(
            lang=lang,
            area=escape(live.region.name if live.region else text["all_kommuner"]),
            other_href=escape(query, quote=True),
            config=escape(json.dumps(config, ensure_ascii=False), quote=True),
        )
        html = template.substitute(values)
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    @app.get(
        "/live/state.json",
        tags=["live"],
        summary="The live page's state",
        responses=PROBLEM_RESPONSES,
    )
    def state(region: RegionParam = None) -> JSONResponse:
        """Latest and previous hour per kommune and mode, sensor states and feed freshness."""
        live = view(region)

        def build() -> dict[str, Any]:
            try:
                return live_state(running.open_store(), live, running.follower)
            except (RetriableError, SQLAlchemyError) as exc:
                raise store_unavailable(exc) from exc

        body, _ = states.get(region or settings.region, build)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    @app.get("/static/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in ASSETS:
            raise Problem(404, "Not Found", f"/static/{name} does not exist")
        body = STATIC.joinpath(name).read_text("utf-8")
        return Response(body, media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})


def _health_routes(app: FastAPI, settings: Settings, running: Running) -> None:
    """``/healthz`` (the process answers) and ``/readyz`` (store, Kafka and lag)."""

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        return JSONResponse(ALIVE, headers={"Cache-Control": "no-store"})

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        checks = {"store": store_check(running.store)}
        if running.follower is not None:
            followed = running.follower.state()
            if not followed.connected:
                checks["kafka"] = Check(False, followed.error or "not connected yet")
            else:
                checks["kafka"] = Check(True, "following volumes.hourly and sensors.status")
                if followed.lag is None:
                    checks["lag"] = Check(False, "not measured yet")
                else:
                    checks["lag"] = lag_check(followed.lag, settings.ready_max_lag)
        status, body = readiness(checks)
        return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def _problems_in_openapi(app: FastAPI) -> None:
    """Describe validation errors as they are answered: 400 problem details, never 422."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = build()
            for operations in spec.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            schemas = spec.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
