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
) -> None:
    """Serve the live page (/) and the read-only API (/api/v1, /openapi.json)."""
    import uvicorn

    from byflyt.cli_base import settings_from
    from byflyt.store.engine import describe
    from byflyt.web import create_app

    settings = settings_from(serve_host=host, serve_port=port)
    app = create_app(settings, follow_topics=False if no_topics else None)
    typer.echo(
        f"byflyt serve: live page http://{settings.serve_host}:{settings.serve_port}/ , "
        f"API /api/v1, OpenAPI /openapi.json (store {describe(settings.database_url)})"
    )
    uvicorn.run(app, host=settings.serve_host, port=settings.serve_port, log_level="warning")
