"""OpenAPI 3 path items of :mod:`kumocore.admin.ready_q` (merged by
:func:`kumocore.admin.openapi.admin_openapi_paths`); shapes are KumoMTA's
``SuspendReadyQueueV1Request``, ``SuspendReadyQueueV1ListEntry``,
``ReadyQueueStateResponse``, ``InspectReadyQV1Response`` and its ``DispatcherSummary``
and ``EffectiveConstraints`` (the latter also in ``resolve-egress-path``'s answer)."""

from __future__ import annotations

from typing import Any

from kumocore.admin.openapi_parts import ERROR, STR, json_body, json_response

__all__ = ["CONSTRAINTS", "ready_q_openapi_paths"]

_ID_BODY = {"type": "object", "required": ["id"], "properties": {"id": STR}}
_NAME = {
    "type": "string",
    "description": "the ready queue (egress path): source->site@protocol",
    "example": "unspecified->(alt1|alt2)?.mx.example.com@smtp_client",
}
_REQUEST = {
    "type": "object",
    "required": ["name", "reason"],
    "additionalProperties": False,
    "properties": {
        "name": _NAME,
        "reason": {"type": "string", "description": "listed with the suspension"},
        "duration": {"type": "string", "nullable": True, "default": "5m",
                     "description": "how long it holds (e.g. 90s, 1h30m)"},
        "expires": {"type": "string", "nullable": True, "format": "date-time",
                    "description": "RFC 3339 end time with a zone; overrides duration"},
    },
}
_ENTRY = {
    "type": "object",
    "required": ["id", "name", "reason", "duration", "expires"],
    "properties": {
        "id": STR,
        "name": _NAME,
        "reason": STR,
        "duration": {"type": "string", "description": "time left, e.g. 287s"},
        "expires": {"type": "string", "format": "date-time"},
    },
}

_QUEUE_STATE = {"type": "object", "required": ["context", "since"],
                "properties": {"context": STR, "since": {"type": "string", "format": "date-time"}}}
_STATES = {
    "type": "object",
    "required": ["states_by_ready_queue"],
    "properties": {"states_by_ready_queue": {
        "type": "object",
        "description": "ready queue name → its states; queues in no state are left out",
        "additionalProperties": {"type": "object", "properties": {
            "connection_limited": _QUEUE_STATE, "connection_rate_throttled": _QUEUE_STATE}},
    }},
}

_CEILING = {
    "type": "object",
    "required": ["value", "source", "display"],
    "properties": {
        "value": {"type": "number", "description": "a count, or events per second"},
        "source": {"type": "object", "required": ["kind"], "properties": {
            "kind": {"type": "string", "enum": ["primary", "additional", "reconnect_cycling",
                                                "other"]},
            "name": {"type": "string", "description": "the additional_* entry's name"}}},
        "display": {"type": "string", "example": "10000/h",
                    "description": "the term in the configuration's own units"},
    },
}
#: KumoMTA's EffectiveConstraints; an axis that nothing limits is null.
CONSTRAINTS: dict[str, Any] = {
    "type": "object",
    "description": "throughput ceilings of the path configuration (KumoMTA's "
                   "EffectiveConstraints); max_source_selection_rate is the lowest of "
                   "source_selection_rate and additional_source_selection_rates",
    "required": ["max_concurrent_dispatchers", "max_message_rate",
                 "max_message_rate_declared", "max_connection_rate",
                 "max_source_selection_rate"],
    "properties": {
        "max_concurrent_dispatchers": _CEILING,
        "max_message_rate": {**_CEILING, "nullable": True},
        "max_message_rate_declared": {
            "type": "string", "nullable": True,
            "description": "max_message_rate when another term binds (out of reach)"},
        "max_connection_rate": {**_CEILING, "nullable": True},
        "max_source_selection_rate": {**_CEILING, "nullable": True},
    },
}
_DURATION = {"type": "string", "example": "8m 12s 4ms", "description": "humantime"}
_DISPATCHER = {
    "type": "object",
    "description": "KumoMTA's DispatcherSummary: one open connection",
    "properties": {
        "session_id": {"type": "string", "format": "uuid"},
        "started_at": {"type": "string", "format": "date-time"},
        "age": _DURATION,
        "phase": {"type": "string", "enum": [
            "Starting", "Idle", "ConnectionRateThrottled", "MessageRateThrottled",
            "AttemptingConnection", "DeliveringMessage", "Closing"]},
        "detail": {"type": "string", "nullable": True,
                   "example": "send msg with 1 recip(s)"},
        "time_in_current_phase": _DURATION,
        "messages_delivered": {"type": "integer"},
        "messages_transfailed": {"type": "integer"},
        "messages_failed": {"type": "integer"},
        "delivered_this_connection": {
            "type": "integer",
            "description": "messages_delivered (a kumocore dispatcher is one connection)"},
        "overall_rate_per_sec": {"type": "number",
                                 "description": "outcomes per second of its age"},
    },
}

_INSPECT = {
    "type": "object",
    "description": "KumoMTA's InspectReadyQV1Response",
    "properties": {
        "queue_name": _NAME,
        "egress_pool": {"type": "string",
                        "description": "the pool of the scheduled queue that opened it"},
        "egress_source": STR,
        "protocol": STR,
        "now": {"type": "string", "format": "date-time"},
        "path_config": {"type": "object"},
        "constraints": CONSTRAINTS,
        "mx": {"type": "object", "nullable": True},
        "dispatchers": {"type": "array", "items": _DISPATCHER},
        "state": {"type": "object", "properties": {
            "connection_count": {"type": "integer"}, "ready_count": {"type": "integer"},
            "suspended": {**_ENTRY, "nullable": True},
            "watchdog_threshold": {
                "type": "string",
                "description": "effective dispatcher_progress_watchdog_timeout (humantime)"},
            "connection_limited": _QUEUE_STATE, "connection_rate_throttled": _QUEUE_STATE}},
        "scheduled_queue_names": {"type": "array", "items": STR,
                                  "description": "with include_scheduled_queues=true"},
    },
}


_BAD = json_response(ERROR, "bad request body")
_NOT_STARTED = json_response(ERROR, "the queues are not started")


def ready_q_openapi_paths() -> dict[str, Any]:
    """Path items keyed by path (fresh dicts: callers may change them)."""
    tags = ["admin"]
    return {
        "/api/admin/suspend-ready-q/v1": {
            "post": {"tags": tags, "summary": "Suspend delivery on one ready queue",
                     "requestBody": json_body(_REQUEST),
                     "responses": {"200": json_response(_ID_BODY), "400": _BAD,
                                   "429": json_response(ERROR, "too many suspended ready "
                                                        "queues (kumocore addition)"),
                                   "503": _NOT_STARTED}},
            "get": {"tags": tags, "summary": "List active ready-queue suspensions",
                    "responses": {"200": json_response({"type": "array", "items": _ENTRY}),
                                  "503": _NOT_STARTED}},
            "delete": {"tags": tags, "summary": "Cancel a ready-queue suspension",
                       "requestBody": json_body(_ID_BODY),
                       "responses": {"200": json_response(_ID_BODY), "400": _BAD,
                                     "404": json_response(
                                         ERROR, "no active suspension with this id"),
                                     "503": _NOT_STARTED}},
        },
        "/api/admin/ready-q-states/v1": {
            "get": {
                "tags": tags,
                "summary": "Ready queues held back by a connection limit or connection rate",
                "parameters": [{"name": "queues", "in": "query", "required": False,
                                "description": "only these ready queues (comma-separated "
                                               "or repeated); all when absent",
                                "schema": {"type": "array", "items": STR},
                                "style": "form", "explode": False}],
                "responses": {"200": json_response(_STATES), "400": _BAD, "503": _NOT_STARTED},
            }
        },
        "/api/admin/inspect-ready-q/v1": {
            "get": {
                "tags": tags,
                "summary": "One ready queue: source, protocol, MX, configuration, "
                           "connections and state",
                "parameters": [
                    {"name": "queue_name", "in": "query", "required": True, "schema": STR},
                    {"name": "include_scheduled_queues", "in": "query", "required": False,
                     "schema": {"type": "boolean", "default": False}},
                ],
                "responses": {"200": json_response(_INSPECT), "400": _BAD,
                              "404": json_response(ERROR, "no such ready queue"),
                              "503": _NOT_STARTED},
            }
        },
        "/api/admin/bump-config-epoch": {
            "post": {
                "tags": tags,
                "summary": "Bump the configuration epoch on every worker (as "
                           "kumo.bump_config_epoch() does)",
                # null or an empty object: KumoMTA's client sends null; anything in it is
                # refused rather than ignored.
                "requestBody": {"required": False, "content": {"application/json": {"schema": {
                    "oneOf": [{"type": "null"},
                              {"type": "object", "maxProperties": 0}]}}}},
                "responses": {
                    "200": {"description": "bumped (empty body, as KumoMTA)"},
                    "400": _BAD,
                    "501": json_response(
                        ERROR, "no installed plugin provides a configuration epoch"),
                },
            }
        },
    }
