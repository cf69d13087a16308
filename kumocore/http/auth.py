"""Who may call what on the HTTP listener (KumoMTA's default ACL).

* ``/api/check-liveness/*``, ``/api-docs/*`` and ``/rapidoc``: anyone.
* ``/api/admin/*``, ``/metrics``, ``/metrics.json``, ``/api/machine-info`` and the
  status page ``/status*``: only peers
  in ``trusted_hosts`` — HTTP Basic credentials do not open them.
* everything else (``/api/inject/v1``...): a peer in ``trusted_hosts``, or any client
  whose HTTP Basic credentials the ``http_server_validate_auth_basic`` event accepts.

Refusals use KumoMTA's texts: ``401 <who> not permitted <METHOD> on <path>``, ``401
HttpBasicAuth Authentication Failed for <user>``, and ``400`` for an Authorization header
that cannot be decoded. A peer whose Basic credentials failed ``auth_failure_limit`` times
within ``auth_failure_window`` gets ``429`` with ``Retry-After`` (and a JSON error)
without the policy being asked, until the oldest failure leaves the window — password
guessing costs a client that much time (kumocore addition). The outcome is stored on the
request as :class:`AuthInfo`; the inject handler copies its summary into the ``http_auth``
meta of each message.
"""

from __future__ import annotations

import base64
import binascii
import collections
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from kumocore.errors import HookError, PolicyError, Rejection

if TYPE_CHECKING:
    from kumocore.config import HttpListenerConfig
    from kumocore.node.runtime import Runtime

OPEN_PREFIXES = ("/api/check-liveness/", "/api-docs/", "/rapidoc")
TRUSTED_ONLY_PREFIXES = ("/api/admin/", "/metrics", "/api/machine-info", "/status")

# aiohttp 3.14 wants typed request keys; older versions only have plain strings.
AUTH_KEY: Any = (
    web.RequestKey("kumocore.auth", object) if hasattr(web, "RequestKey") else "kumocore.auth")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class AuthInfo:
    """How a request was authorised."""

    peer_address: str
    trusted: bool
    user: str | None = None

    @property
    def summary(self) -> str:
        """KumoMTA's ``http_auth`` meta: the Basic user name, else the trusted peer IP."""
        return self.user if self.user is not None else self.peer_address

    def to_dict(self) -> dict[str, Any]:
        return {"peer_address": self.peer_address, "trusted": self.trusted, "user": self.user}


def request_auth(request: web.Request) -> AuthInfo:
    """The :class:`AuthInfo` the middleware stored on ``request``."""
    info = request.get(AUTH_KEY)
    if not isinstance(info, AuthInfo):
        raise web.HTTPUnauthorized(text="Unauthorized")
    return info


def _basic_credentials(header: str) -> tuple[str, str]:
    """``Basic <base64 user:password>`` -> (user, password); ValueError if malformed."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise ValueError("unsupported scheme")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None
    user, _, password = decoded.partition(":")
    return user, password


class AuthFailures:
    """Recent HTTP Basic failures per peer IP, to answer ``429`` beyond ``limit``."""

    #: Peers remembered at most; older entries are dropped first (bounded memory).
    MAX_PEERS = 10_000

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._failures: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict())

    def retry_after(self, peer: str, now: float | None = None) -> int | None:
        """Seconds the peer must wait, or None when it may try again now."""
        failures = self._failures.get(peer)
        if failures is None:
            return None
        now = time.monotonic() if now is None else now
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[peer]
            return None
        if len(failures) < self.limit:
            return None
        return max(1, math.ceil(failures[0] + self.window - now))

    def failed(self, peer: str, now: float | None = None) -> None:
        failures = self._failures.pop(peer, None) or collections.deque(maxlen=self.limit)
        failures.append(time.monotonic() if now is None else now)
        self._failures[peer] = failures  # most recent last
        while len(self._failures) > self.MAX_PEERS:
            self._failures.popitem(last=False)


def _too_many_failures(peer: str, seconds: int) -> web.Response:
    return web.json_response(
        {"error": f"too many failed HTTP Basic authentications from {peer}; "
                  f"retry in {seconds}s"},
        status=429, headers={"Retry-After": str(seconds)})


def make_auth_middleware(runtime: Runtime, config: HttpListenerConfig) -> Any:
    """The aiohttp middleware enforcing the rules in the module docstring."""
    failures = AuthFailures(config.auth_failure_limit, config.auth_failure_window)

    @web.middleware
    async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        peer = request.remote or ""
        trusted = bool(peer) and config.trusted_hosts.contains(peer)
        if path.startswith(OPEN_PREFIXES):
            request[AUTH_KEY] = AuthInfo(peer, trusted)
            return await handler(request)
        if trusted:
            request[AUTH_KEY] = AuthInfo(peer, True)
            return await handler(request)
        header = request.headers.get("Authorization")
        user: str | None = None
        if header is not None and not path.startswith(TRUSTED_ONLY_PREFIXES):
            wait = failures.retry_after(peer)
            if wait is not None:
                return _too_many_failures(peer, wait)
            try:
                user, password = _basic_credentials(header)
            except ValueError:
                failures.failed(peer)
                return web.Response(
                    status=400, text="Malformed or unsupported Authorization header")
            try:
                valid = await runtime.hooks.http_server_validate_auth_basic(user, password)
            except Rejection:
                valid = False
            except (PolicyError, HookError):
                return web.Response(status=500, text="try again later")
            if not valid:
                failures.failed(peer)
                return web.Response(
                    status=401, text=f"HttpBasicAuth Authentication Failed for {user}")
            request[AUTH_KEY] = AuthInfo(peer, False, user)
            return await handler(request)
        who = user or peer
        return web.Response(status=401, text=f"{who} not permitted {request.method} on {path}")

    return auth_middleware
