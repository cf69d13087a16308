"""Request checks shared by every route: cross-site requests, DNS rebinding, slow bodies.

A browser on any web page can send a "simple" cross-site ``POST`` (``text/plain`` body,
no preflight) to ``http://127.0.0.1:8000`` — a trusted host by default — and a DNS
rebinding page can even read the answers. So (issue 14, finding 14):

* every state-changing request (``POST``, ``PUT``, ``PATCH``, ``DELETE``) must say
  ``Content-Type: application/json`` (``415`` otherwise) — browsers cannot send that
  cross-site without a CORS preflight, which this listener never grants;
* a state-changing request carrying a foreign ``Origin`` (one that is not this listener's
  own ``Host``), or ``Sec-Fetch-Site: cross-site``, is refused with ``403``;
* a request let in only because its peer is in ``trusted_hosts`` must name the listener
  in ``Host`` by an IP literal, ``localhost`` or the listener's ``hostname``: a rebinding
  page names its own domain there, and gets ``403``.

The body is read here, under ``request_body_timeout`` (``408`` when it does not arrive in
time); handlers then get it from aiohttp's cache. Errors are JSON ``{"error": ...}``, and
so are the router's ``404``/``405`` for a path under ``/api/``.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web

from kumocore.http.auth import AUTH_KEY, AuthInfo
from kumocore.http.encoding import (
    BodyEncodingError,
    BodyTooLarge,
    UnsupportedEncoding,
    decode_body,
)

if TYPE_CHECKING:
    from kumocore.config import HttpListenerConfig
    from kumocore.http.connections import ConnectionGuard

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TOO_LARGE = "Failed to buffer the request body: length limit exceeded"


def json_error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


def untrusted_peer(config: HttpListenerConfig, request: web.Request) -> web.Response | None:
    """A JSON ``401`` for a peer outside the listener's ``trusted_hosts``, None for one in
    it: the services that answer only their trusted hosts (``kumocore tsa serve``, the
    proxy server's HTTP listener) refuse the others so."""
    peer = request.remote or ""
    try:
        allowed = config.trusted_hosts.contains(peer)
    except ValueError:  # not an IP address (a Unix socket peer)
        allowed = False
    return None if allowed else json_error(401, f"{peer} is not a trusted host")


def make_connection_middleware(guard: ConnectionGuard | None) -> Any:
    """Tells the connection guard when a request is being handled (no header deadline)."""

    @web.middleware
    async def connection_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        conn = guard.connection_of(request.protocol) if guard is not None else None
        if conn is None:
            return await handler(request)
        conn.begin()
        try:
            return await handler(request)
        finally:
            conn.end()

    return connection_middleware


def host_name(host: str) -> str:
    """``Host``/``Origin`` authority -> lower-case host without port or brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def is_local_name(host: str, config: HttpListenerConfig) -> bool:
    """An IP literal, ``localhost`` or the listener's own ``hostname``."""
    name = host_name(host)
    if name in ("localhost", config.hostname.lower().rstrip(".")) or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _origin_refusal(request: web.Request) -> str | None:
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        return "cross-site request refused (Sec-Fetch-Site: cross-site)"
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    parts = urlsplit(origin.strip())
    own = request.headers.get("Host", "").strip().lower()
    if not parts.netloc or parts.netloc.lower() != own:
        return f"cross-origin request refused: Origin {origin!r} is not this listener ({own!r})"
    return None


def _is_json(request: web.Request) -> bool:
    content_type = request.headers.get("Content-Type", "")
    return content_type.partition(";")[0].strip().lower() == "application/json"


#: Paths whose body is not JSON: KumoMTA's xfer sends ``application/octet-stream``
#: (kumocore.xfer.wire), a type no cross-site form can send either.
_OCTET_PATHS = frozenset({"/api/xfer/inject/v1"})


def _is_octets(request: web.Request) -> bool:
    content_type = request.headers.get("Content-Type", "")
    return (
        request.path in _OCTET_PATHS
        and content_type.partition(";")[0].strip().lower() == "application/octet-stream"
    )


def make_request_guard(config: HttpListenerConfig) -> Any:
    """The middleware enforcing the module docstring; runs after the access rules."""

    @web.middleware
    async def request_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        info = request.get(AUTH_KEY)
        trusted_only = isinstance(info, AuthInfo) and info.trusted and info.user is None
        host = request.headers.get("Host")
        open_path = request.path.startswith(("/api/check-liveness/", "/api-docs/", "/rapidoc"))
        if trusted_only and not open_path and host is not None and not is_local_name(
                host, config):
            return json_error(403, f"Host {host!r} is not this listener: a request from a "
                              "trusted host must name it by IP address, localhost or "
                              "its hostname (DNS rebinding protection)")
        if request.method not in STATE_CHANGING:
            return await _json_routing_errors(request, handler)
        refusal = _origin_refusal(request)
        if refusal is not None:
            return json_error(403, refusal)
        if not _is_json(request) and not _is_octets(request):
            got = request.headers.get("Content-Type", "none")
            return json_error(415, f"Content-Type must be application/json, got {got!r}")
        try:
            async with asyncio.timeout(config.request_body_timeout):
                raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text=TOO_LARGE)
        except TimeoutError:
            response = json_error(408, "request body not received within "
                                  f"{config.request_body_timeout:g}s (request_body_timeout)")
            response.force_close()
            # Answer and hang up now: aiohttp would otherwise linger, reading the rest of a
            # body that is not coming.
            await response.prepare(request)
            await response.write_eof()
            if request.transport is not None:
                request.transport.close()
            return response
        coding = request.headers.get("Content-Encoding")
        if coding is not None:
            try:
                body = await asyncio.to_thread(
                    decode_body, raw, coding, config.request_body_limit)
            except BodyTooLarge:
                return web.Response(status=413, text=TOO_LARGE)
            except UnsupportedEncoding as exc:
                return json_error(415, str(exc))
            except BodyEncodingError as exc:
                return json_error(400, str(exc))
            # The handlers read the body through request.read(), which returns what it
            # read before: from now on, the decoded body (aiohttp keeps it there).
            request._read_bytes = body  # type: ignore[attr-defined]
        return await _json_routing_errors(request, handler)

    return request_guard


async def _json_routing_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The router's own 404 and 405 under ``/api/`` as JSON errors, as every API error is
    (aiohttp answers them in text: a client parsing the error got none)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if request.match_info.http_exception is None or not request.path.startswith("/api/"):
            raise
        allow = exc.headers.get("Allow")
        extra = {"Allow": allow} if allow is not None else {}
        return json_error(exc.status, f"{exc.reason}: {request.method} {request.path}",
                          **extra)
