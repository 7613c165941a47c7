"""Render every error as RFC 9457 application/problem+json."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from callscope.errors import ServiceError

PROBLEM_JSON = "application/problem+json"


def problem_response(
    *,
    code: str,
    status: int,
    detail: str,
    instance: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": f"/problems/{code}",
        "title": code.replace("_", " ").capitalize(),
        "status": status,
        "detail": detail,
        "instance": instance,
        "code": code,
        **extra,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


async def _render_service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)  # noqa: S101 - registered for ServiceError only
    return problem_response(
        code=exc.code,
        status=exc.status,
        detail=exc.detail,
        instance=request.url.path,
        headers=dict(exc.headers) or None,
        **exc.extra,
    )


def _public_error(error: Any) -> dict[str, Any]:
    """A validation error without the offending input: it may be kilobytes of audio."""
    return {"loc": list(error.get("loc", ())), "msg": error.get("msg"), "type": error.get("type")}


async def _render_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for it only
    errors = [_public_error(error) for error in exc.errors()]
    if any(error["type"] == "json_invalid" for error in errors):
        code, status, detail = "malformed_json", 400, "The request body is not valid JSON."
    else:
        code, status, detail = "validation_error", 422, "The request is not valid."
    return problem_response(
        code=code, status=status, detail=detail, instance=request.url.path, errors=errors
    )


async def _render_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for it only
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return problem_response(
        code=code,
        status=exc.status_code,
        detail=str(exc.detail),
        instance=request.url.path,
        headers=dict(exc.headers) if exc.headers else None,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _render_service_error)
    app.add_exception_handler(RequestValidationError, _render_validation_error)
    app.add_exception_handler(StarletteHTTPException, _render_http_error)
