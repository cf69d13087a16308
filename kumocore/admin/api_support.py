"""What an admin endpoint module needs to answer requests, without importing
:mod:`kumocore.admin.routes` (which imports the endpoint modules to register them, so an
import back would be an import circle).

The conventions are those of :mod:`kumocore.admin.routes`: errors are JSON
``{"error": "..."}`` — 400 for a bad body or query (and a ``ConfigError``), 503 while the
queues are not started — and bodies are parsed with orjson (which refuses lone
surrogates and runaway nesting with a 400, where ``json`` would raise a 500).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from aiohttp import web

from kumocore.admin.json_answer import json_answer
from kumocore.errors import ConfigError

if TYPE_CHECKING:
    from kumocore.node.runtime import Runtime
    from kumocore.node.services import Services
    from kumocore.queue.manager import QueueManager

__all__ = ["ADMIN_PREFIX", "ApiError", "json_answer", "json_errors", "json_object", "manager_of",
           "query_limit", "read_object", "refuse_unknown_query", "rule_id_of", "services_of"]

ADMIN_PREFIX = "/api/admin"

Api = TypeVar("Api")
Method = Callable[[Api, web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """Answer the current request with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_errors(handler: Method[Api]) -> Method[Api]:
    """Turn :class:`ApiError` and ``ConfigError`` into JSON error answers."""

    @wraps(handler)
    async def wrapper(self: Api, request: web.Request) -> web.StreamResponse:
        try:
            return await handler(self, request)
        except ApiError as exc:
            return web.json_response({"error": _bounded(exc.message)}, status=exc.status)
        except ConfigError as exc:
            return web.json_response({"error": _bounded(str(exc))}, status=400)

    return wrapper


#: Characters of an error message answered at most: one quoting what it was given (an id
#: of 100,000 characters) says enough in its first thousand.
MAX_ERROR_CHARS = 1_000


def _bounded(message: str) -> str:
    if len(message) <= MAX_ERROR_CHARS:
        return message
    return f"{message[:MAX_ERROR_CHARS]}... ({len(message) - MAX_ERROR_CHARS} more characters)"


def query_limit(request: web.Request, most: int, default: int) -> int:
    """The ``limit`` query parameter: a whole number (else 400), at most ``most`` (a
    larger one is lowered to it); ``default`` when absent."""
    from kumocore.digits import decimal

    raw = request.query.get("limit")
    if raw is None:
        return default
    limit = decimal(raw)
    if limit is None:
        raise ApiError(400, "query parameter 'limit' must be a whole number")
    return min(limit, most)


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request's body, which must be a JSON object (else 400)."""
    # orjson, not json: it refuses lone surrogates ("\ud800", not text: they broke the
    # status page and rebind half-way) and nesting past its depth limit (json raised
    # RecursionError: a 500), like the inject API's parser.
    try:
        body = orjson.loads(await request.read())
    except ValueError as exc:  # orjson.JSONDecodeError
        raise ApiError(400, f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


async def read_object(request: web.Request, fields: tuple[str, ...]) -> dict[str, Any]:
    """The request's JSON object body; a field other than ``fields`` is refused (400)
    rather than ignored."""
    body = await json_object(request)
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise ApiError(400, f"unknown field(s) {', '.join(map(repr, unknown))}; "
                       f"this request takes {', '.join(fields)}")  # fmt: skip
    return body


def refuse_unknown_query(request: web.Request, names: tuple[str, ...]) -> None:
    """400 for a query parameter other than ``names``: a misspelt one (``queue=`` for
    ``queues=``) must not quietly widen or change the answer."""
    unknown = sorted(set(request.query) - set(names))
    if unknown:
        raise ApiError(400, f"unknown query parameter(s) {', '.join(map(repr, unknown))}; "
                       f"this request takes {', '.join(names)}")  # fmt: skip


async def rule_id_of(request: web.Request) -> str:
    """The ``id`` of a cancel request's body (a DELETE of a bounce or suspension)."""
    rule_id = (await json_object(request)).get("id")
    if not isinstance(rule_id, str) or not rule_id:
        raise ApiError(400, "field 'id' is required and must be a string")
    return rule_id


def services_of(runtime: Runtime) -> Services:
    """The started node's services (503 before the queues start)."""
    services = runtime.services
    if services is None:
        raise ApiError(503, "the queues are not started")
    return services


def manager_of(runtime: Runtime) -> QueueManager:
    """The started node's queue manager (503 before the queues start)."""
    return services_of(runtime).queues
