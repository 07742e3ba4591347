"""RFC 7807 problem details: every error the web app answers is ``application/problem+json``.

A :class:`Problem` raised anywhere in a request becomes one response; FastAPI's parameter
validation errors and Starlette's own HTTP errors (404, 405) are turned into the same shape, so a
client reads one error format that says what to fix.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

PROBLEM_JSON = "application/problem+json"
INVALID_PARAMETER = "urn:byflyt:problem:invalid-parameter"
STORE_UNAVAILABLE = "urn:byflyt:problem:store-unavailable"


class ParameterError(BaseModel):
    """What is wrong with one parameter."""

    parameter: str
    message: str


class ProblemDetails(BaseModel):
    """An RFC 7807 problem document (``application/problem+json``)."""

    type: str = Field(default="about:blank", description="A URI that names the kind of problem.")
    title: str
    status: int
    detail: str = Field(description="What went wrong and what to do about it.")
    instance: str | None = Field(default=None, description="The request path and query.")
    errors: list[ParameterError] = Field(default_factory=list)


class Problem(Exception):
    """An error answered as problem details."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        kind: str = "about:blank",
        errors: list[ParameterError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind
        self.errors = errors or []
        self.headers = headers or {}


def store_unavailable(exc: Exception) -> Problem:
    """A 503 for a store that cannot be read right now (named by the error's type only)."""
    return Problem(
        503,
        "Store unavailable",
        f"cannot read the store: {type(exc).__name__}; retry in a moment",
        kind=STORE_UNAVAILABLE,
    )


def bad_parameter(parameter: str, message: str) -> Problem:
    """A 400 for one parameter; ``message`` says what to send instead."""
    return Problem(
        400,
        "Invalid request parameter",
        f"{parameter}: {message}",
        kind=INVALID_PARAMETER,
        errors=[ParameterError(parameter=parameter, message=message)],
    )


def _instance(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def problem_response(request: Request, problem: Problem) -> JSONResponse:
    """The response for ``problem``."""
    body = ProblemDetails(
        type=problem.kind,
        title=problem.title,
        status=problem.status,
        detail=problem.detail,
        instance=_instance(request),
        errors=problem.errors,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def _validation_problem(exc: RequestValidationError) -> Problem:
    errors = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ()) if part not in ("query", "path")]
        name = ".".join(loc) or "request"
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        errors.append(ParameterError(parameter=name, message=message))
    detail = "; ".join(f"{e.parameter}: {e.message}" for e in errors) or "invalid request"
    return Problem(400, "Invalid request parameter", detail, kind=INVALID_PARAMETER, errors=errors)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as problem details."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(request, exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(request, _validation_problem(exc))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        detail = str(exc.detail)
        if exc.status_code == 404:
            detail = f"{request.url.path} does not exist; the API is described at /openapi.json"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed here: the API is read-only, use GET"
        response = problem_response(request, Problem(exc.status_code, _title(exc), detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)


def _title(exc: HTTPException) -> str:
    try:
        return HTTPStatus(exc.status_code).phrase
    except ValueError:
        return "Error"


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "A parameter is invalid; `detail` and `errors` say what to fix.",
        "model": ProblemDetails,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}},
    },
    503: {
        "description": "The store cannot be read right now; retry later.",
        "model": ProblemDetails,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}},
    },
}
"""The error responses every API operation documents (the OpenAPI ``responses``)."""
