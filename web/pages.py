"""Paged answers of the ``/api/v1`` lists: items, ``total``, ``links`` and their headers.

Every page carries ``total`` and ``links`` in its body and as ``X-Total-Count`` and an RFC 8288
``Link`` header; ``/hourly`` can answer CSV instead (:func:`wants_csv`).
"""

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from byflyt.web.schemas import Links

CSV = "text/csv"
_T = TypeVar("_T")


def _relative(request: Request, **params: Any) -> str:
    url = request.url.include_query_params(**params)
    return f"{url.path}?{url.query}"


def links(request: Request, total: int, limit: int, offset: int) -> Links:
    """The page's own, next and previous URLs."""
    after = offset + limit
    return Links(
        self=_relative(request, limit=limit, offset=offset),
        next=_relative(request, limit=limit, offset=after) if after < total else None,
        prev=_relative(request, limit=limit, offset=max(0, offset - limit)) if offset else None,
    )


def link_header(page_links: Links) -> str:
    """The RFC 8288 ``Link`` header of a page."""
    parts = [f'<{page_links.self}>; rel="self"']
    if page_links.next:
        parts.append(f'<{page_links.next}>; rel="next"')
    if page_links.prev:
        parts.append(f'<{page_links.prev}>; rel="prev"')
    return ", ".join(parts)


def page(
    request: Request, items: Sequence[Any], total: int, limit: int, offset: int
) -> JSONResponse:
    """A JSON page with its ``Link`` and ``X-Total-Count`` headers."""
    page_links = links(request, total, limit, offset)
    body = page_body(items, total, limit, offset, page_links)
    return JSONResponse(body, headers=page_headers(page_links, total))


def page_body(
    items: Sequence[Any], total: int, limit: int, offset: int, page_links: Links
) -> dict[str, Any]:
    """What a page says in its body: its ``items``, ``total``, ``limit``, ``offset``, ``links``."""
    return {
        "items": list(items),
        "total": total,
        "limit": limit,
        "offset": offset,
        "links": page_links.model_dump(),
    }


def paged(
    request: Request,
    found: Sequence[_T],
    limit: int,
    offset: int,
    item: Callable[[_T], BaseModel],
) -> JSONResponse:
    """The page ``[offset, offset + limit)`` of ``found``, each made an item by ``item``."""
    items = [item(each).model_dump() for each in found[offset : offset + limit]]
    return page(request, items, len(found), limit, offset)


def page_headers(page_links: Links, total: int) -> dict[str, str]:
    """The ``Link`` and ``X-Total-Count`` headers of a page."""
    return {"Link": link_header(page_links), "X-Total-Count": str(total)}


def wants_csv(request: Request) -> bool:
    """Whether the client asked for CSV (``Accept: text/csv``) rather than JSON."""
    accept = request.headers.get("accept", "")
    kinds = [part.split(";", 1)[0].strip().lower() for part in accept.split(",")]
    return CSV in kinds and "application/json" not in kinds[: kinds.index(CSV)]
