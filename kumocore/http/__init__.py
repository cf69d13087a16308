"""The HTTP listener: ``/api/inject/v1``, liveness, the OpenAPI document, admin routes.

``start_http_listener(runtime, config)`` is what :mod:`kumocore.node.server` calls for each
``kumo.start_http_listener{...}`` of the policy. See docs/http-api.md.

Owns reception over HTTP (the inject API and its schema, templating and access rules) and
the HTTP listener the admin, status and automation routes are mounted on. It does not own
making a message durable (:mod:`kumocore.reception.intake`), nor the admin endpoints themselves
(:mod:`kumocore.admin`).
"""

from __future__ import annotations

from kumocore.http.openapi import add_openapi_paths
from kumocore.http.server import HttpListener, make_app, start_http_listener

__all__ = ["HttpListener", "add_openapi_paths", "make_app", "start_http_listener"]
