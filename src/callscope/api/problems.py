"""Render every error as RFC 9457 application/problem+json."""

import json
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from callscope.errors import MalformedJson, RequestInvalid, ServiceError

PROBLEM_JSON = "application/problem+json"


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


def invalid_request(errors: Iterable[Any], *, loc_prefix: Sequence[str] = ()) -> ServiceError:
    """The ServiceError for pydantic/FastAPI validation errors, without the offending input:
    it may be kilobytes of audio. Malformed JSON is 400, anything else 422."""
    public = [
        {
            "loc": [*loc_prefix, *error.get("loc", ())],
            "msg": error.get("msg"),
            "type": error.get("type"),
        }
        for error in errors
    ]
    if any(error["type"] == "json_invalid" for error in public):
        return MalformedJson("The request body is not valid JSON.", errors=public)
    return RequestInvalid("The request is not valid.", errors=public)


def _service_error_response(exc: ServiceError, instance: str) -> JSONResponse:
    body = problem_body(
        code=exc.code, status=exc.status, detail=exc.detail, instance=instance, **exc.extra
    )
    return JSONResponse(
        body, status_code=exc.status, headers=dict(exc.headers) or None, media_type=PROBLEM_JSON
    )


async def _render_service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)  # noqa: S101 - registered for ServiceError only
    return _service_error_response(exc, request.url.path)


async def _render_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for it only
    return _service_error_response(invalid_request(exc.errors()), request.url.path)


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
