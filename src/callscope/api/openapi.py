"""The OpenAPI document, completed with what FastAPI cannot derive from the models: the problem
schema every error uses, and the constraints that depend on these settings (packet size, the
default audio format)."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from callscope.api.problems import Problem
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
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend it
