"""OpenAPI path items of the two trace WebSockets (:mod:`kumocore.trace.ws`).

OpenAPI cannot describe the messages of a WebSocket; as KumoMTA's docs say, the path only
names the endpoint. The message shapes are given as schemas under
``x-websocket-messages`` (the filter the client sends first, the events it then gets), so
a reader or a generator can still find them.
"""

from __future__ import annotations

from typing import Any

from kumocore.admin.openapi_parts import ERROR, STR, json_response
from kumocore.trace.filters import CLIENT_FIELDS

_CIDRS = {"type": "array", "nullable": True, "items": STR, "example": ["10.0.0.0/16"]}
_TERSE = {
    "type": "boolean",
    "default": False,
    "description": "abbreviate multi-line data to its first line and size",
}
_SERVER_REQUEST = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"source_addr": _CIDRS, "terse": _TERSE},
}
_CLIENT_REQUEST = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **{name: {"type": "array", "items": STR, "default": []} for name in CLIENT_FIELDS},
        "source_addr": _CIDRS,
        "mx_addr": _CIDRS,
        "terse": _TERSE,
    },
}


def _event(kinds: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["conn_meta", "payload", "when"],
        "properties": {
            "conn_meta": {"type": "object", "nullable": True},
            "payload": {
                "description": f"one of {kinds}: a bare string for the kinds without "
                'data, else {"<kind>": data}',
            },
            "when": {"type": "string", "format": "date-time"},
        },
    }


_SERVER_KINDS = (
    '"Connected", "Closed", {"Read": text}, {"Write": text}, {"Diagnostic": {level, '
    'message}}, {"Callback": {name, result, error}}, {"MessageDisposition": {relay, '
    "log_arf, log_oob, queue, meta, sender, recipient, id, was_arf_or_oob, will_enqueue}}, "
    '{"AbbreviatedRead": {snippet, len}}'
)
_CLIENT_KINDS = (
    '"BeginSession", "Connected", "MessageObtained", "Closed", {"Read": text}, '
    '{"Write": text}, {"Diagnostic": {level, message}}, {"AbbreviatedWrite": {snippet, len}}'
)


def _path(side: str, command: str, request: dict[str, Any], kinds: str) -> dict[str, Any]:
    return {
        "get": {
            "tags": ["debugging"],
            "summary": f"WebSocket: live trace of {side} SMTP sessions (kumocore {command})",
            "description": "Upgrade to a WebSocket, send the filter as one JSON text "
            "message, then receive one JSON text message per event. A client that reads "
            "too slowly loses the oldest events and gets a Diagnostic saying how many. An "
            "unusable filter closes the socket with code 1008 and the reason.",
            "x-websocket-messages": {"request": request, "event": _event(kinds)},
            "responses": {
                "101": {"description": "Switching Protocols (the trace follows)"},
                "400": json_response(ERROR, "Not a WebSocket upgrade request"),
                "401": {"description": "Not a trusted host"},
            },
        }
    }


def trace_openapi_paths() -> dict[str, Any]:
    return {
        "/api/admin/trace-smtp-server/v1": _path(
            "the listener's", "trace-smtp-server", _SERVER_REQUEST, _SERVER_KINDS
        ),
        "/api/admin/trace-smtp-client/v1": _path(
            "the delivery client's", "trace-smtp-client", _CLIENT_REQUEST, _CLIENT_KINDS
        ),
    }
