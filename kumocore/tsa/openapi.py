"""OpenAPI path items of the automation endpoints (merged into the admin document)."""

from __future__ import annotations

from typing import Any

_STR = {"type": "string"}
_OBJ = {"type": "object"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    body = {"type": "object", "properties": {"error": _STR}}
    return {"description": description, "content": {"application/json": {"schema": body}}}


def tsa_openapi_paths() -> dict[str, Any]:
    action = {"type": "object", "properties": {
        name: _STR for name in ("id", "kind", "rule", "reason", "site", "site_name", "source",
                                "domain", "since_rfc3339", "expires_rfc3339")}}
    return {
        "/publish_log_v1": {"post": {
            "tags": ["automation"],
            "summary": "Feed a KumoMTA JSON log record (or an array) to automation",
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": _OBJ}}},
            "responses": {"200": {"description": "accepted"},
                          "400": _error("not a log record"),
                          "404": _error("automation not configured")},
        }},
        "/get_config_v1/shaping.toml": {"get": {
            "tags": ["automation"],
            "summary": "Active config overrides as a KumoMTA shaping file",
            "responses": {"200": {"description": "OK",
                                  "content": {"text/plain": {"schema": _STR}}}},
        }},
        "/get_suspension_v1/suspended.json": {"get": {
            "tags": ["automation"],
            "summary": "Active suspensions as KumoMTA's tsa-daemon lists them",
            "responses": {"200": _json({"type": "object", "properties": {
                "ready_q": {"type": "array", "items": _OBJ},
                "sched_q": {"type": "array", "items": _OBJ}}})},
        }},
        "/subscribe_event_v1": {"get": {
            "tags": ["automation"],
            "summary": "Websocket: ReadyQSuspension / SchedQSuspension items (KumoMTA's)",
            "responses": {"200": {"description": "websocket upgrade"},
                          "404": _error("automation not configured")},
        }},
        "/api/admin/tsa/v1": {
            "get": {
                "tags": ["admin"],
                "summary": "Active automation actions: rule, path, since, until",
                "responses": {"200": _json({"type": "object", "properties": {
                    "configured": {"type": "boolean"},
                    "store": {"type": "string", "nullable": True},
                    "actions": {"type": "array", "items": action}}}),
                    "503": _error("store unavailable")},
            },
            "delete": {
                "tags": ["admin"],
                "summary": "Cancel an automation action on every node",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"type": "object", "required": ["id"],
                               "properties": {"id": _STR}}}}},
                "responses": {"200": _json({"type": "object", "properties": {"id": _STR}}),
                              "400": _error("no id"), "404": _error("no such action")},
            },
        },
    }
