"""The OpenAPI 3 document served at ``/api-docs/openapi.json``.

It describes what this listener serves: injection and liveness here, and whatever the
admin routes add through :func:`add_openapi_paths` (``kumocore.admin.routes`` calls it
from ``add_admin_routes``). The document lives on the aiohttp application, so each
listener describes exactly its own routes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from kumocore import __version__
from kumocore.http.rapidoc import RAPIDOC_PATHS

OPENAPI_KEY: web.AppKey[dict[str, Any]] = web.AppKey("kumocore.openapi", dict)

_STRING = {"type": "string"}
_ANY_MAP = {"type": "object", "additionalProperties": True}
_MAILBOX = {
    "type": "object", "additionalProperties": False, "required": ["email"],
    "properties": {"email": _STRING, "name": _STRING},
}
_ERROR_RESPONSE = {
    "description": "The error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "string", "description": "What is wrong"}},
    },
    "Recipient": {
        "type": "object", "additionalProperties": False, "required": ["email"],
        "properties": {
            "email": {"type": "string", "example": "john.smith@mailbox-example.com"},
            "name": {"type": "string", "example": "John Smith"},
            "substitutions": {**_ANY_MAP, "description": "Template variables for this "
                              "recipient; they take precedence over the global ones"},
            "metadata": {**_ANY_MAP, "description": "Stored in the message meta `extra`"},
        },
    },
    "FromHeader": _MAILBOX,
    "Attachment": {
        "type": "object", "additionalProperties": False, "required": ["data", "content_type"],
        "properties": {
            "data": {"type": "string", "description": "UTF-8 text, or base64 if `base64`"},
            "content_type": {"type": "string", "example": "image/gif"},
            "content_id": {"type": "string", "description": "Makes the part inline "
                           "(multipart/related), referenced from HTML as cid:<content_id>"},
            "file_name": _STRING,
            "base64": {"type": "boolean", "default": False},
        },
    },
    "Builder": {
        "type": "object", "additionalProperties": False,
        "description": "The MIME structure to build; text_body and/or html_body required",
        "properties": {
            "text_body": _STRING, "html_body": _STRING, "amp_html_body": _STRING,
            "subject": _STRING,
            "headers": {"type": "object", "additionalProperties": {"type": "string"},
                        "example": {"X-Tenant": "MyTenant"}},
            "from": {"$ref": "#/components/schemas/FromHeader"},
            "reply_to": {"$ref": "#/components/schemas/FromHeader"},
            "attachments": {"type": "array",
                            "items": {"$ref": "#/components/schemas/Attachment"}},
        },
    },
    "TraceHeaders": {
        "type": "object", "additionalProperties": False,
        "properties": {
            "received_header": {"type": "boolean", "default": False},
            "supplemental_header": {"type": "boolean", "default": True},
            "header_name": {"type": "string", "default": "X-KumoRef"},
            "include_meta_names": {"type": "array", "items": _STRING},
        },
    },
    "InjectV1Request": {
        "type": "object", "additionalProperties": False,
        "required": ["envelope_sender", "recipients", "content"],
        "properties": {
            "envelope_sender": {"type": "string", "example": "bounce@sender-example.com"},
            "recipients": {"type": "array", "minItems": 1,
                           "items": {"$ref": "#/components/schemas/Recipient"}},
            "content": {"oneOf": [
                {"type": "string", "description": "A complete RFC 5322 message template"},
                {"$ref": "#/components/schemas/Builder"}]},
            "substitutions": {**_ANY_MAP, "description": "Template variables for everyone"},
            "template_dialect": {"type": "string", "enum": ["Jinja", "Static"],
                                 "default": "Jinja"},
            "deferred_spool": {"type": "boolean", "default": False,
                               "description": "Hold the messages in memory until their first "
                               "transient failure (a crash loses them)"},
            "deferred_generation": {"type": "boolean", "default": False,
                                    "description": "Queue the request in "
                                    "generator.kumomta.internal and answer at once (zero "
                                    "counts); its messages are generated later"},
            "trace_headers": {"$ref": "#/components/schemas/TraceHeaders"},
        },
    },
    "InjectV1Response": {
        "type": "object",
        "required": ["success_count", "fail_count", "failed_recipients", "errors"],
        "properties": {
            "success_count": {"type": "integer", "minimum": 0},
            "fail_count": {"type": "integer", "minimum": 0},
            "failed_recipients": {"type": "array", "items": _STRING},
            "errors": {"type": "array", "items": _STRING,
                       "example": ["c@example.com: 550 5.7.1 rejected by policy"]},
        },
    },
}

PATHS: dict[str, Any] = {
    "/api/inject/v1": {"post": {
        "tags": ["inject"],
        "summary": "Inject a message for a list of recipients, with template expansion",
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/InjectV1Request"}}}},
        "responses": {
            "200": {"description": "Processed; per-recipient failures are in the body",
                    "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/InjectV1Response"}}}},
            "400": {**_ERROR_RESPONSE, "description": "Malformed request"},
            "401": {"description": "Not a trusted host and no valid HTTP Basic credentials"},
            "422": {**_ERROR_RESPONSE, "description": "Template or builder error"},
        },
        "security": [{}, {"basicAuth": []}],
    }},
    "/api/check-liveness/v1": {"get": {
        "tags": ["liveness"],
        "summary": "Whether the server is ready to accept messages",
        "responses": {
            "200": {"description": "ready to accept messages",
                    "content": {"text/plain": {"schema": _STRING}}},
            "503": {"description": "service is not currently available"},
        },
    }},
    "/api-docs/openapi.json": {"get": {
        "tags": ["docs"], "summary": "This document",
        "responses": {"200": {"description": "The OpenAPI document"}},
    }},
    **RAPIDOC_PATHS,
}


#: Open to anyone: no access rule, so none of the refusals below applies.
_OPEN_PATHS = ("/api/check-liveness/", "/api-docs/", "/rapidoc")
_STATE_CHANGING = ("post", "put", "patch", "delete")


def _error(description: str) -> dict[str, Any]:
    return {**_ERROR_RESPONSE, "description": description}


#: What the listener's guards may answer (kumocore.http.guard, kumocore.http.auth).
GUARD_RESPONSES: dict[str, Any] = {
    "403": _error("Cross-site request (a foreign Origin, Sec-Fetch-Site: cross-site) or, "
                  "for a trusted host, a Host header that is not an IP literal, localhost "
                  "or the listener's hostname (DNS rebinding)"),
}
STATE_CHANGING_RESPONSES: dict[str, Any] = {
    "408": _error("The request body did not arrive within request_body_timeout"),
    "413": {"description": "Request body larger than request_body_limit (text), or, for "
                           "injection, content size x recipients over "
                           "inject_generated_size_limit (JSON error)",
            "content": {"text/plain": {"schema": _STRING},
                        "application/json": {"schema": {
                            "$ref": "#/components/schemas/Error"}}}},
    "415": _error("Content-Type is not application/json"),
}
BASIC_AUTH_RESPONSES: dict[str, Any] = {
    "429": {**_error("Too many failed HTTP Basic authentications from this peer within "
                     "auth_failure_window"),
            "headers": {"Retry-After": {"schema": {"type": "integer"},
                                        "description": "Seconds until it may try again"}}},
}


def add_guard_responses(document: dict[str, Any]) -> None:
    """Describe the refusals every guarded operation may get (after all paths are in)."""
    for path, operations in document["paths"].items():
        if path.startswith(_OPEN_PATHS):
            continue
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            extra = dict(GUARD_RESPONSES)
            if method in _STATE_CHANGING:
                extra.update(STATE_CHANGING_RESPONSES)
            if any("basicAuth" in rule for rule in operation.get("security", [])):
                extra.update(BASIC_AUTH_RESPONSES)
            for status, response in extra.items():
                responses.setdefault(status, copy.deepcopy(response))


def base_document(title: str = "kumocore") -> dict[str, Any]:
    """A fresh document with the inject and liveness API."""
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": __version__,
                 "description": "kumocore HTTP API (KumoMTA-compatible)"},
        "paths": copy.deepcopy(PATHS),
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "securitySchemes": {"basicAuth": {"type": "http", "scheme": "basic"}},
        },
    }


def add_openapi_paths(
    app: web.Application,
    paths: Mapping[str, Any],
    schemas: Mapping[str, Any] | None = None,
) -> None:
    """Merge ``paths`` (and component ``schemas``) into ``app``'s document.

    Methods of a path that is already there are added to it; a method or schema name
    that already exists is replaced, so the later registration wins.
    """
    document = app[OPENAPI_KEY]
    for path, operations in paths.items():
        document["paths"].setdefault(path, {}).update(copy.deepcopy(dict(operations)))
    for name, schema in (schemas or {}).items():
        document["components"]["schemas"][name] = copy.deepcopy(schema)


async def serve_openapi(request: web.Request) -> web.Response:
    document = request.app[OPENAPI_KEY]
    add_guard_responses(document)  # idempotent; covers paths added after make_app too
    return web.json_response(document)
