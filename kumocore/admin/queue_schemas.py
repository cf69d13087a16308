"""OpenAPI schemas of the admin endpoints that show and move queued messages.

``inspect-message`` and ``inspect-sched-q`` (one message, one scheduled queue),
``queue-summary`` (every queue with its size) and ``rebind`` (its request and kumocore's
answer), in KumoMTA's shapes. :mod:`kumocore.admin.openapi` builds their path items from
these; the bounce and suspension rules' schemas stay there with the one function that
builds all three of a rule endpoint's operations.
"""

from __future__ import annotations

from kumocore.admin.openapi_parts import _NULLABLE_STR, STR

_INSPECT = {
    "type": "object",
    "properties": {
        "id": STR,
        "message": {
            "type": "object",
            "properties": {
                "sender": STR,
                "recipient": {
                    "oneOf": [STR, {"type": "array", "items": STR}],
                    "description": "the address, or the list of a batch's recipients",
                },
                "meta": {"type": "object"},
                "data": {"type": "string", "description": "only with want_body=true"},
                "due": {
                    "type": "string",
                    "format": "date-time",
                    "description": "present while the message waits in the scheduler",
                },
                "created": {"type": "string", "format": "date-time"},
                "num_attempts": {"type": "integer"},
            },
        },
    },
}
_SUMMARY = {
    "type": "object",
    "properties": {
        "scheduled": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": STR,
                    "count": {"type": "integer"},
                    "egress_pool": STR,
                    "site": _NULLABLE_STR,
                },
            },
        },
        "ready": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": STR,
                    "source": STR,
                    "site": STR,
                    "count": {"type": "integer"},
                    "connections": {"type": "integer"},
                    "connection_limit": {"type": "integer"},
                },
            },
        },
        "totals": {"type": "object", "additionalProperties": {"type": "integer"}},
    },
}


_REBIND_REQUEST = {
    "type": "object",
    "required": ["reason"],
    "additionalProperties": False,
    "properties": {
        "campaign": _NULLABLE_STR,
        "tenant": _NULLABLE_STR,
        "domain": _NULLABLE_STR,
        "routing_domain": _NULLABLE_STR,
        "reason": {"type": "string", "description": "logged in AdminRebind records"},
        "data": {"type": "object", "additionalProperties": STR,
                 "description": "meta values to set on each matching message, or (with "
                                "trigger_rebind_event) what the rebind_message event gets"},
        "always_flush": {"type": "boolean", "default": False,
                         "description": "make every matching message due now"},
        "suppress_logging": {"type": "boolean", "default": False},
        "trigger_rebind_event": {
            "type": "boolean", "default": False,
            "description": "call the policy's rebind_message event with each message and "
                           "data instead of merging data into the meta"},
    },
}
_REBIND_RESULT = {
    "type": "object",
    "description": "KumoMTA answers {}; kumocore adds how many messages it moved and flushed",
    "properties": {"moved": {"type": "integer"}, "flushed": {"type": "integer"}},
}
_SCHED_Q = {
    "type": "object",
    "properties": {
        "queue_name": STR,
        "num_scheduled": {"type": "integer"},
        "delayed_metric": {"type": "integer"},
        "now": {"type": "string", "format": "date-time"},
        "last_changed": {"type": "string", "format": "date-time"},
        "queue_config": {"type": "object"},
        "messages": {"type": "array", "items": {"type": "object"}},
    },
}
