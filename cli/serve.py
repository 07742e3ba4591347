"""``byflyt serve``: the live page and the read-only API on one port (127.0.0.1 by default)."""

from __future__ import annotations

from typing import Annotated

import typer


def serve(
    host: Annotated[
        str | None,
        typer.Option("--host", help="Address to bind (default BYFLYT_SERVE_HOST, 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", help="Port (default BYFLYT_SERVE_PORT, 8066).", min=1, max=65535),
    ] = None,
    no_topics: Annotated[
        bool,
        typer.Option("--no-topics", help="Read the store only; do not follow the Kafka topics."),
    ] = False,
    public: Annotated[
        bool,
        typer.Option(
            "--public",
            help="Listen beyond loopback with an open API (no BYFLYT_SERVE_TOKEN needed).",
        ),
    ] = False,
) -> None:
    """Serve the live page (/) and the read-only API (/api/v1, /openapi.json).

    Beyond loopback (--host 0.0.0.0, a LAN address) the API needs BYFLYT_SERVE_TOKEN as a bearer
    token, or --public to leave it open; serve says which at start.
    """
    import uvicorn

    from byflyt.kafka import check_access
    from byflyt.store.engine import describe
    from byflyt.web import create_app
    from byflyt.web.security import is_loopback

    from .base import fail, settings_from

    settings = settings_from(serve_host=host, serve_port=port)
    where = settings.serve_host
    if settings.serve_token is not None:
        access = "API needs its bearer token (BYFLYT_SERVE_TOKEN)"
    elif is_loopback(where):
        access = "loopback only, API open to this machine"
    elif public:
        access = f"PUBLIC: anyone who reaches {where} reads the API (--public)"
    else:
        fail(
            f"configuration error: BYFLYT_SERVE_HOST: {where} listens beyond this machine "
            "(fix: set BYFLYT_SERVE_TOKEN for a bearer-token API, or pass --public to serve it "
            "openly, or bind 127.0.0.1)"
        )
    follow = settings.serve_topics and not no_topics
    if follow:
        check_access(settings)  # a wrong password or CA stops serve here, in one line
    app = create_app(settings, follow_topics=follow)
    typer.echo(
        f"byflyt serve: live page http://{where}:{settings.serve_port}/ , API /api/v1, "
        f"OpenAPI /openapi.json, /healthz, /readyz (store {describe(settings.database_url)}); "
        f"{access}"
    )
    uvicorn.run(app, host=settings.serve_host, port=settings.serve_port, log_level="warning")
