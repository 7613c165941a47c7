"""Render every error as RFC 9457 application/problem+json."""

import json
from collections.abc import Iterable
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from callscope.errors import MalformedJson, RequestInvalid, ServiceError, StorageUnavailable

PROBLEM_JSON = "application/problem+json"

log = structlog.get_logger(__name__)


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


async def _render_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for it only
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    body = problem_body(
        code=code, status=exc.status_code, detail=str(exc.detail), instance=request.url.path
    )
    return JSONResponse(
        body,
        status_code=exc.status_code,
        headers=dict(exc.headers) if exc.headers else None,
        media_type=PROBLEM_JSON,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _render_service_error)
    app.add_exception_handler(RequestValidationError, _render_validation_error)
    app.add_exception_handler(StarletteHTTPException, _render_http_error)
    app.add_exception_handler(DataError, _render_data_error)
    app.add_exception_handler(SQLAlchemyError, _render_database_error)
    app.add_exception_handler(OSError, _render_database_error)
    app.add_exception_handler(Exception, _render_unexpected_error)
