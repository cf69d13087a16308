"""OpenAPI path items of the xfer endpoints (merged into the admin document).

Shapes are KumoMTA's ``XferV1Request`` and ``XferCancelV1Request``; the answers add
``moved`` (kumocore's endpoints answer once the messages are moved)."""

from __future__ import annotations

from typing import Any

from kumocore.admin.openapi_parts import ERROR, STR, json_body, json_response

__all__ = ["xfer_openapi_paths"]

_NULLABLE_STR = {"type": "string", "nullable": True}
_MOVED = {"type": "object", "properties": {"moved": {"type": "integer", "minimum": 0}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): json_response(ERROR, "refused") for code in codes}


def xfer_openapi_paths() -> dict[str, Any]:
    xfer_request = {
        "type": "object",
        "required": ["target", "reason"],
        "additionalProperties": False,
        "properties": {
            "target": {**STR, "example": "http://10.0.0.2:8000",
                       "description": "the target node's HTTP listener"},
            "reason": {**STR, "description": "recorded in each AdminRebind record"},
            "campaign": _NULLABLE_STR, "tenant": _NULLABLE_STR, "domain": _NULLABLE_STR,
            "routing_domain": _NULLABLE_STR,
            "queue_names": {"type": "array", "nullable": True, "items": STR,
                            "description": "exact scheduled-queue names; override the rest"},
        },
    }  # fmt: skip
    cancel_request = {
        "type": "object",
        "required": ["queue_name", "reason"],
        "additionalProperties": False,
        "properties": {"queue_name": {**STR, "example": "http://10.0.0.2:8000/.xfer.kumomta.internal"},
                       "reason": STR},
    }  # fmt: skip
    return {
        "/api/admin/xfer/v1": {"post": {
            "tags": ["xfer"],
            "summary": "Move waiting messages of the matching queues to another node",
            "requestBody": json_body(xfer_request),
            "responses": {"200": json_response(_MOVED), **_errors(400, 503)},
        }},
        "/api/admin/xfer/cancel/v1": {"post": {
            "tags": ["xfer"],
            "summary": "Put the waiting messages of a transfer queue back in their queues",
            "requestBody": json_body(cancel_request),
            "responses": {"200": json_response(_MOVED), **_errors(400, 404, 503)},
        }},
        "/api/xfer/inject/v1": {"post": {
            "tags": ["xfer"],
            "summary": "Take a message transferred from another node (internal: one JSON "
                       "line of envelope and meta, a newline, the message; gzip encoded)",
            "requestBody": {"required": True, "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
            "responses": {
                "200": json_response({"type": "object", "properties": {"id": STR}}),
                **_errors(400, 413, 422, 503)},
        }},
    }  # fmt: skip
