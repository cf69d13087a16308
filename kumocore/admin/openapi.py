"""OpenAPI 3 path items of the admin endpoints and ``/metrics``.

The HTTP listener merges :func:`admin_openapi_paths` into its ``openapi.json``. Schemas
are inline (no ``$ref``) so that merging is a plain dict update with nothing else to
carry over. Shapes are KumoMTA's (``BounceV1Request``, ``SuspendV1ListEntry``...); those
of the endpoints that show and move queued messages are :mod:`kumocore.admin.queue_schemas`.
"""

from __future__ import annotations

import copy
from typing import Any

from kumocore.admin.openapi_parts import _NULLABLE_STR, STR, json_response
from kumocore.admin.queue_schemas import (
    _INSPECT,
    _REBIND_REQUEST,
    _REBIND_RESULT,
    _SCHED_Q,
    _SUMMARY,
)

__all__ = ["admin_openapi_paths"]

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "example": "field 'reason' is required"}},
}
_ID_BODY = {"type": "object", "required": ["id"], "properties": {"id": STR}}

_RULE_REQUEST = {
    "type": "object",
    "required": ["reason"],
    "additionalProperties": False,
    "properties": {
        # null means "not given", as in KumoMTA (whose kcli sends null for unset fields).
        "campaign": _NULLABLE_STR,
        "tenant": _NULLABLE_STR,
        "domain": _NULLABLE_STR,
        "routing_domain": _NULLABLE_STR,
        "reason": {"type": "string", "description": "recorded in the log / list entries"},
        # duration and expires are Option<...> in KumoMTA's request types: null is allowed.
        "duration": {
            "type": "string",
            "nullable": True,
            "default": "5m",
            "description": "how long the rule stays active (e.g. 90s, 1h30m)",
        },
        "expires": {
            "type": "string",
            "nullable": True,
            "format": "date-time",
            "description": "RFC 3339 end time; overrides duration",
        },
        # kumocore also reads null here as "not given" (an empty list).
        "queue_names": {
            "type": "array",
            "nullable": True,
            "items": STR,
            "description": "exact scheduled-queue names; override the match fields",
        },
        "suppress_logging": {"type": "boolean", "default": False},
    },
}
_BOUNCE_COUNTS = {
    "bounced": {
        "type": "object",
        "additionalProperties": {"type": "integer"},
        "description": "messages bounced, per scheduled queue name",
    },
    "total_bounced": {"type": "integer"},
}
_BOUNCE_ENTRY = {
    "type": "object",
    "properties": {
        "id": STR,
        "campaign": _NULLABLE_STR,
        "tenant": _NULLABLE_STR,
        "domain": _NULLABLE_STR,
        "routing_domain": _NULLABLE_STR,
        "reason": STR,
        "duration": {"type": "string", "description": "time left, e.g. 287s"},
        **_BOUNCE_COUNTS,
    },
}
_SUSPEND_ENTRY = {
    "type": "object",
    "properties": {
        "id": STR,
        "campaign": _NULLABLE_STR,
        "tenant": _NULLABLE_STR,
        "domain": _NULLABLE_STR,
        "reason": STR,
        "duration": {"type": "string", "description": "time left, e.g. 287s"},
    },
}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {400: "bad request body or query", 404: "unknown id", 503: "the queues are not started",
            429: "past the bounds on active rules (kumocore addition)"}
    return {str(s): json_response(_ERROR, text[s]) for s in statuses}


def _rule_path(kind: str, created: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    tag = ["admin"]
    return {
        "post": {
            "tags": tag,
            "summary": f"Create a {kind} rule",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _RULE_REQUEST}},
            },
            "responses": {"200": json_response(created), **_errors(400, 429, 503)},
        },
        "get": {
            "tags": tag,
            "summary": f"List active {kind} rules",
            "responses": {"200": json_response({"type": "array", "items": entry}), **_errors(503)},
        },
        "delete": {
            "tags": tag,
            "summary": f"Cancel a {kind} rule",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ID_BODY}},
            },
            "responses": {"200": json_response(_ID_BODY), **_errors(400, 404, 503)},
        },
    }


def admin_openapi_paths() -> dict[str, Any]:
    """Path items keyed by path, ready to merge into an OpenAPI 3 document's ``paths``."""
    bounce_created = {"type": "object", "properties": {"id": STR, **_BOUNCE_COUNTS}}
    paths: dict[str, Any] = {
        "/api/admin/bounce/v1": _rule_path("bounce", bounce_created, _BOUNCE_ENTRY),
        "/api/admin/suspend/v1": _rule_path("suspend", _ID_BODY, _SUSPEND_ENTRY),
        "/api/admin/inspect-message/v1": {
            "get": {
                "tags": ["admin"],
                "summary": "Show a queued message",
                "parameters": [
                    {"name": "id", "in": "query", "required": True, "schema": STR},
                    {
                        "name": "want_body",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "boolean", "default": False},
                    },
                ],
                "responses": {"200": json_response(_INSPECT), **_errors(400, 404, 503)},
            }
        },
        "/api/admin/rebind/v1": {
            "post": {
                "tags": ["admin"],
                "summary": "Rebind waiting messages: set meta, move queues, or retry now",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _REBIND_REQUEST}},
                },
                "responses": {"200": json_response(_REBIND_RESULT), **_errors(400, 503)},
            }
        },
        "/api/admin/inspect-sched-q/v1": {
            "get": {
                "tags": ["admin"],
                "summary": "The messages of one scheduled queue",
                "parameters": [
                    {"name": "queue_name", "in": "query", "required": True, "schema": STR},
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 0}},
                    {"name": "want_body", "in": "query", "required": False,
                     "schema": {"type": "boolean", "default": False}},
                ],
                "responses": {"200": json_response(_SCHED_Q), **_errors(400, 503)},
            }
        },
        "/api/admin/queue-summary/v1": {
            "get": {
                "tags": ["admin"],
                "summary": "Scheduled and ready queues with their sizes (the busiest `limit` "
                           "of each kind; totals over all)",
                "parameters": [
                    {"name": "limit", "in": "query", "required": False,
                     "description": "queues of each kind listed (past 10,000: 10,000)",
                     "schema": {"type": "integer", "minimum": 0, "default": 1000}},
                ],
                "responses": {"200": json_response(_SUMMARY), **_errors(400, 503)},
            }
        },
        "/api/admin/status/v1": {
            "get": {
                "tags": ["admin"],
                "summary": "The status page's data: counters, queues, rules, recent "
                           "responses, node facts (kumocore addition)",
                "responses": {"200": json_response({"type": "object"})},
            }
        },
        "/metrics": {
            "get": {
                "tags": ["metrics"],
                "summary": "Prometheus text exposition (format 0.0.4)",
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"text/plain; version=0.0.4": {"schema": STR}},
                    }
                },
            }
        },
        "/metrics.json": {
            "get": {
                "tags": ["metrics"],
                "summary": "The same metrics as JSON",
                "responses": {"200": json_response({"type": "object"})},
            }
        },
    }
    from kumocore.admin.node_ops_openapi import node_ops_openapi_paths
    from kumocore.admin.ready_q_openapi import ready_q_openapi_paths
    from kumocore.trace.openapi import trace_openapi_paths
    from kumocore.tsa.openapi import tsa_openapi_paths

    paths.update(ready_q_openapi_paths())
    paths.update(node_ops_openapi_paths())
    paths.update(tsa_openapi_paths())
    paths.update(trace_openapi_paths())
    from kumocore.xfer.openapi import xfer_openapi_paths

    paths.update(xfer_openapi_paths())
    # Callers may mutate what they merge; never let that reach the shared schema dicts.
    return copy.deepcopy(paths)
