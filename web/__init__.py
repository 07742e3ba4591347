"""``byflyt serve``: the operators' live page and the analysts' read-only HTTP API."""

from byflyt.web.app import create_app

__all__ = ["create_app"]
