"""Render every error as RFC 9457 application/problem+json."""

import json
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any, Final

import structlog
from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DataError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from callscope.errors import MalformedJson, RequestInvalid, ServiceError, StorageUnavailable

PROBLEM_JSON: Final = "application/problem+json"
_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

log = structlog.get_logger(__name__)


class Problem(BaseModel):
    """An error, as RFC 9457 problem details; `code` is stable, `detail` is for people."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(description="`/problems/<code>`.", examples=["/problems/call_not_found"])
    title: str = Field(description="The code, in words.")
    status: int = Field(description="The HTTP status.")
    detail: str = Field(description="What went wrong, for people.")
    instance: str = Field(description="The request path.")
    code: str = Field(description="Stable, snake_case error code.", examples=["call_not_found"])


PROBLEM_SCHEMA_REF: Final = {"$ref": "#/components/schemas/Problem"}


# What most routes may answer besides success, for their OpenAPI `responses`.
AUTH_ERRORS: Final = {
    401: "No bearer token, or one this service does not know.",
    403: "A token of the other kind (ingest vs supervisor).",
}
BODY_ERRORS: Final = {
    400: "The body is not JSON, or not JSON the service can read (not UTF-8, nested over "
    "1,000 deep, an integer of more than 4,300 digits).",
    413: "The body is larger than the service accepts.",
    415: "The body is not `application/json`.",
}
INVALID: Final = {422: "A parameter or field is invalid (`errors` says which); nothing changed."}
NOT_FOUND: Final = {404: "No such call (or no such route: a call id cannot hold `/`)."}
UNAVAILABLE: Final = {503: "The database is unavailable; retry after `Retry-After` seconds."}


def problem_responses(statuses: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries: each status with its description, answered as
    `application/problem+json` with the `Problem` schema."""
    return {
        status: {"description": text, "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA_REF}}}
        for status, text in statuses.items()
    }


def problem_body(
    *, code: str, status: int, detail: str, instance: str, **extra: Any
) -> dict[str, Any]:
    return {
        "type": f"/problems/{code}",
        "title": code.replace("_", " ").capitalize(),
        "status": status,
        "detail": detail,
        "instance": instance,
        "code": code,
        **extra,
    }


def service_error_body(exc: ServiceError, instance: str) -> bytes:
    """The problem document of a ServiceError, serialised (for raw ASGI answers)."""
    body = problem_body(
        code=exc.code, status=exc.status, detail=exc.detail, instance=instance, **exc.extra
    )
    return json.dumps(body).encode()


def invalid_request(errors: Iterable[Any]) -> ServiceError:
    """The ServiceError for FastAPI's validation errors, without the offending input: it may
    be kilobytes of audio. Malformed JSON is 400, anything else 422."""
    public = [
        {
            "loc": list(error.get("loc", ())),
            "msg": error.get("msg"),
            "type": error.get("type"),
        }
        for error in errors
    ]
    if any(error["type"] == "json_invalid" for error in public):
        return MalformedJson("The request body is not valid JSON.", errors=public)
    return RequestInvalid("The request is not valid.", errors=public)


def _service_error_response(exc: ServiceError, instance: str) -> Response:
    return Response(
        service_error_body(exc, instance),
        status_code=exc.status,
        headers=dict(exc.headers) or None,
        media_type=PROBLEM_JSON,
    )


async def deny_upgrade(websocket: WebSocket, exc: ServiceError) -> None:
    """Answer a WebSocket upgrade with `exc`'s problem document and HTTP status instead of
    accepting it: a status a load balancer can act on (retry a 503 on another replica)."""
    await websocket.send_denial_response(_service_error_response(exc, websocket.url.path))


async def _render_service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)  # noqa: S101 - registered for ServiceError only
    return _service_error_response(exc, request.url.path)


async def _render_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for it only
    return _service_error_response(invalid_request(exc.errors()), request.url.path)


async def _render_data_error(request: Request, exc: Exception) -> Response:
    """PostgreSQL refused a value (a date out of its range, a NUL in text): the caller's fault."""
    invalid = RequestInvalid(f"a parameter is out of range: {type(exc.__cause__).__name__}")
    return _service_error_response(invalid, request.url.path)


async def _render_database_error(request: Request, exc: Exception) -> Response:
    log.warning("database_unavailable", error=type(exc).__name__, path=request.url.path)
    unavailable = StorageUnavailable("the database is unavailable; retry shortly")
    return _service_error_response(unavailable, request.url.path)


async def _render_unexpected_error(request: Request, exc: Exception) -> Response:
    log.error("request_failed", path=request.url.path, exc_info=exc)
    return _service_error_response(ServiceError("an unexpected error occurred"), request.url.path)


async def _render_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for it only
    if exc.status_code == HTTPStatus.BAD_REQUEST:
        # FastAPI's answer to a body its JSON parser gave up on, other than a syntax error
        # (that one is a RequestValidationError): not UTF-8, nested deeper than the parser
        # goes, or an integer of more digits than Python converts.
        unreadable = MalformedJson(
            "The request body could not be read as JSON (it must be UTF-8, nested less "
            "deeply, with integers of at most 4300 digits)."
        )
        return _service_error_response(unreadable, request.url.path)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    body = problem_body(
        code=code, status=exc.status_code, detail=str(exc.detail), instance=request.url.path
    )
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:  # FastAPI routes one method each
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return JSONResponse(
        body, status_code=exc.status_code, headers=headers or None, media_type=PROBLEM_JSON
    )


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path: asked of each route as a request of that
    method would be (routes of an included router sit below one entry of `app.routes`)."""
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.routes
        )
    ]


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _render_service_error)
    app.add_exception_handler(RequestValidationError, _render_validation_error)
    app.add_exception_handler(StarletteHTTPException, _render_http_error)
    app.add_exception_handler(DataError, _render_data_error)
    app.add_exception_handler(SQLAlchemyError, _render_database_error)
    app.add_exception_handler(OSError, _render_database_error)
    app.add_exception_handler(Exception, _render_unexpected_error)
