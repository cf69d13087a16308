"""The pieces every admin OpenAPI module builds its path items from: a JSON response, a
JSON request body, a text response, and the shared string and error schemas.

Its own module because :mod:`kumocore.admin.openapi` imports the endpoint modules'
path items to merge them, so they cannot import it back.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ERROR", "STR", "json_body", "json_response", "text_response"]

STR: dict[str, Any] = {"type": "string"}
#: The ``{"error": "..."}`` answer of every refused admin request.
ERROR: dict[str, Any] = {"type": "object", "required": ["error"], "properties": {"error": STR}}
#: A string that may be null (a field a request may leave unset, as in KumoMTA).
_NULLABLE_STR = {"type": "string", "nullable": True}


def json_response(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def text_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": STR}}}
