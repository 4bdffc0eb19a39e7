"""Errors as RFC 9457 problem documents (`application/problem+json`), each with a stable `type`.

A handler raises ApiError, or lets a ProstoyMailError through: each kind of error maps to one
status and one type. Anything unexpected is a 500 whose detail says nothing of the inside
(it is logged instead).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from ..errors import ConfigError, Conflict, Invalid, NotFound, OverLimit, ProstoyMailError

log = logging.getLogger(__name__)
TYPE_BASE = "https://prostoy.biz/problems/"  # (an identifier: stable, need not resolve)
MEDIA_TYPE = "application/problem+json"


class Problem(BaseModel):
    """RFC 9457: `type` names the kind of error, `detail` this occurrence."""

    type: str
    title: str
    status: int
    detail: str | None = None
    # (an extension) the field of the request's body the problem is about, where it is one
    # field: the settings page shows the problem next to it
    field: str | None = None


class ApiError(Exception):
    def __init__(self, status: int, kind: str, title: str, detail: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or title)
        self.status, self.kind, self.title, self.detail, self.headers = status, kind, title, detail, headers


def unauthenticated(detail: str) -> ApiError:
    return ApiError(401, "unauthenticated", "Authentication required", detail, {"WWW-Authenticate": "Bearer"})


def forbidden(detail: str) -> ApiError:
    return ApiError(403, "forbidden", "Not allowed", detail)


def not_found(detail: str) -> ApiError:
    return ApiError(404, "not-found", "Not found", detail)


# a ProstoyMailError's kind -> (status, type, title)
_KINDS: list[tuple[type[Exception], int, str, str]] = [
    (NotFound, 404, "not-found", "Not found"),
    (OverLimit, 409, "over-limit", "Over the organisation's limit"),
    (Conflict, 409, "conflict", "Conflict"),
    (Invalid, 422, "invalid", "Invalid value"),
    (ConfigError, 422, "invalid-settings", "The settings would not be valid"),
]


def response(status: int, kind: str, title: str, detail: str | None = None,
             headers: dict[str, str] | None = None, field: str | None = None) -> JSONResponse:
    body = Problem(type=TYPE_BASE + kind, title=title, status=status, detail=detail, field=field)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, media_type=MEDIA_TYPE,
                        headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return response(exc.status, exc.kind, exc.title, exc.detail, exc.headers)

    @app.exception_handler(ProstoyMailError)
    async def domain_error(_request: Request, exc: ProstoyMailError) -> JSONResponse:
        for kind, status, name, title in _KINDS:
            if isinstance(exc, kind):
                detail = "; ".join(str(p) for p in exc.problems) if isinstance(exc, ConfigError) else str(exc)
                field = _settings_field(exc.problems) if isinstance(exc, ConfigError) else exc.field
                return response(status, name, title, detail, field=field)
        return response(422, "refused", "Refused", str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return response(422, "invalid-request", "The request is not valid", _explain(exc.errors()),
                        field=_body_field(exc.errors()))

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        kind = {400: "bad-request", 404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return response(exc.status_code, kind, str(exc.detail), None, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("API %s %s failed", request.method, request.url.path)
        return response(500, "internal", "Internal error", "the daemon could not answer this request; see its log")


def _explain(errors: Any) -> str:
    """pydantic's errors as one line: `body.login: Field required; ...` (values are never echoed)."""
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


def _body_field(errors: Any) -> str | None:
    """The body's field pydantic's first error is about (`name` of loc ("body", "name", ...))."""
    loc: tuple[Any, ...] = tuple(errors[0].get("loc", ())) if errors else ()
    return str(loc[1]) if len(loc) > 1 and loc[0] == "body" else None


def _settings_field(problems: list[Any]) -> str | None:
    """The entry's key the first problem names (`rules[3].task` -> `task`)."""
    key = str(problems[0].key) if problems else ""
    name = key.rsplit(".", 1)[-1] if "." in key else ""
    return name or None


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {MEDIA_TYPE: {}}, "description": description}
    for status, description in ((400, "The body cannot be read (not JSON)"),
                                (401, "No valid bearer token"),
                                (403, "Not allowed for this caller"),
                                (404, "No such object (or not this caller's organisation's)"),
                                (409, "Conflicts with what there is"),
                                (422, "Not valid"))
}
