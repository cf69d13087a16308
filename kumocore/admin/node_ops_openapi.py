"""OpenAPI 3 path items of machine-info, the diagnostic log filter, abort-ready-q-conn,
spool-compact and resolve-egress-path (merged by
:func:`kumocore.admin.openapi.admin_openapi_paths`).

Request and response shapes are KumoMTA's (``MachineInfoV1``,
``SetDiagnosticFilterRequest``, ``AbortReadyQConnV1Request``, ``SpoolCompactV1Request``,
``ResolveEgressPathV1Response``), minus what kumocore does not fill (said in each
description). ``constraints`` is ready_q_openapi's schema.
"""

from __future__ import annotations

from typing import Any

from kumocore.admin.openapi_parts import ERROR, STR, json_body, json_response, text_response
from kumocore.admin.ready_q_openapi import CONSTRAINTS

__all__ = ["node_ops_openapi_paths"]


_MACHINE_INFO = {
    "type": "object",
    "required": ["hostname", "node_id", "num_cores", "platform", "online_since",
                 "process_kind", "version"],
    "properties": {
        "hostname": STR,
        "node_id": {"type": "string", "description": "this worker's log-record nodeid "
                    "(new at each start)"},
        "num_cores": {"type": "integer"},
        "kernel_version": {"type": "string", "nullable": True},
        "platform": {"type": "string", "example": "linux/x86_64"},
        "container_runtime": {"type": "string", "nullable": True},
        "online_since": {"type": "string", "format": "date-time",
                         "description": "when this worker process started"},
        "process_kind": {"type": "string", "example": "kumocore"},
        "version": STR,
        "mac_address": {"type": "string", "description": "absent when not readable"},
        "cpu_brand": {"type": "string", "description": "absent when not readable"},
        "distribution": {"type": "string", "description": "absent when not readable"},
        "os_version": {"type": "string", "description": "absent when not readable"},
        "total_memory_bytes": {"type": "integer", "description": "absent when not readable"},
        "fingerprint": {"type": "string", "description": "machine_uid=<machine-id>; "
                        "absent without /etc/machine-id (no cloud metadata is asked)"},
    },
}
_MX = {
    "type": "object",
    "nullable": True,
    "properties": {
        "site_name": STR,
        "by_preference": {"type": "object",
                          "additionalProperties": {"type": "array", "items": STR}},
        "is_domain_literal": {"type": "boolean"},
        "is_secure": {"type": "boolean"},
        "is_mx": {"type": "boolean"},
    },
}
_RESOLVED = {
    "type": "object",
    "description": "KumoMTA's ResolveEgressPathV1Response; `constraints` counts the "
                   "scheduled queue's max_message_rate too (source kind other)",
    "required": ["domain", "source", "mx", "queue_name", "queue_config", "path_config",
                 "constraints"],
    "properties": {
        "domain": STR,
        "source": STR,
        "mx": _MX,
        "queue_name": {"type": "string", "example": "unspecified->mx.example@smtp_client"},
        "queue_config": {"type": "object"},
        "path_config": {"type": "object"},
        "constraints": CONSTRAINTS,
    },
}


def node_ops_openapi_paths() -> dict[str, Any]:
    """Path items keyed by path (a fresh copy per call)."""
    log_filter = {"type": "object", "required": ["filter"], "additionalProperties": False,
                  "properties": {"filter": {"type": "string", "example": "kumod=debug"}}}
    abort = {"type": "object", "required": ["queue_name", "session_id"],
             "additionalProperties": False,
             "properties": {"queue_name": STR, "session_id": {"type": "string",
                                                               "format": "uuid"}}}
    return {
        "/api/machine-info": {"get": {
            "tags": ["debugging"], "summary": "What machine and process answer",
            "responses": {"200": json_response(_MACHINE_INFO)}}},
        "/api/admin/set_diagnostic_log_filter/v1": {"post": {
            "tags": ["logging"], "summary": "Change the diagnostic log filter (every worker)",
            "requestBody": json_body(log_filter),
            "responses": {"200": {"description": "applied (empty body)"},
                          "400": json_response(ERROR, "bad body or filter")}}},
        "/api/admin/abort-ready-q-conn/v1": {"post": {
            "tags": ["inspect"],
            "summary": "Abort one connection of a ready queue; its message is retried",
            "requestBody": json_body(abort),
            "responses": {"200": text_response("aborted <session_id>"),
                          "400": json_response(ERROR, "bad body"),
                          "404": json_response(ERROR, "no matching queue or session")}}},
        "/api/admin/spool-compact/v1": {"post": {
            "tags": ["spool"],
            "summary": "Flush and fully compact one spool on every worker (RocksDB; other "
                       "kinds have nothing to do)",
            "requestBody": json_body({"type": "object", "required": ["name"],
                                      "additionalProperties": False,
                                      "properties": {"name": {"type": "string",
                                                              "example": "data"}}}),
            "responses": {"200": {"description": "compacted (empty body)"},
                          "400": json_response(ERROR, "bad body"),
                          "404": json_response(ERROR, "no spool of that name"),
                          "500": json_response(ERROR, "the storage failed")}}},
        "/api/admin/resolve-egress-path/v1": {"get": {
            "tags": ["inspect"],
            "summary": "The queue and egress path configuration a domain would get",
            "parameters": [
                {"name": "domain", "in": "query", "required": True, "schema": STR,
                 "description": "a domain name (IDNA; labels of 1-63 octets, 253 in all), "
                                "optionally with :port, or a domain literal"},
                {"name": "source", "in": "query", "required": False,
                 "schema": {"type": "string", "default": "unspecified"}},
            ],
            "responses": {"200": json_response(_RESOLVED),
                          "400": json_response(ERROR, "bad query or malformed domain"),
                          "500": json_response(ERROR, "the policy failed")}}},
    }
