"""The OpenAPI document, completed with what FastAPI cannot derive from the models: the problem
schema every error uses, and the constraints that depend on these settings (packet size, the
default audio format)."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from callscope.api.problems import Problem, problem_responses
from callscope.calls.schemas import (
    METADATA_VALUE_SCHEMA,
    base64_length_limit,
    declared_format_schema,
)
from callscope.settings import Settings

_REF_TEMPLATE = "#/components/schemas/{model}"


def install_openapi(app: FastAPI, settings: Settings) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schemas = document["components"]["schemas"]
            schemas["Problem"] = Problem.model_json_schema(ref_template=_REF_TEMPLATE)
            schemas["MetadataValue"] = METADATA_VALUE_SCHEMA
            packet_data = schemas["PacketIn"]["properties"]["data"]
            packet_data.update(base64_length_limit(settings.max_packet_bytes))
            default_encoding = settings.default_audio_format.encoding
            schemas["CallCreateIn"]["anyOf"] = declared_format_schema(default_encoding)
            _document_body_refusals(document, settings.max_body_bytes)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend it


def _document_body_refusals(document: dict[str, Any], max_body_bytes: int) -> None:
    """Every route answers the body middleware's refusals (`api.bodies`), whether or not it
    reads a body: 413 and 415, unless the route says more about them itself."""
    refusals = problem_responses(
        {
            413: f"The request body is larger than {max_body_bytes} bytes.",
            415: "The request has a body that is not application/json.",
        }
    )
    for path_item in document["paths"].values():
        for operation in path_item.values():
            for status, answer in refusals.items():
                operation["responses"].setdefault(str(status), answer)
