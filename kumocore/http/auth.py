"""Who may call what on the HTTP listener: authentication, then KumoMTA's ACL check.

Every request is checked against the access control lists (:mod:`kumocore.http.acl_check`)
for its path's resource (``http_listener/<local addr>/<path>``...) with its method as the
privilege. The session's auth info: its peer address; the group
``kumomta:http-listener-trusted-ip`` when the peer is in ``trusted_hosts``; the HTTP Basic
user when the ``http_server_validate_auth_basic`` event accepts the credentials (or the
identities and groups of an AuthInfo table it returns); a Bearer token likewise through
``http_server_validate_auth_bearer`` when the policy handles that event. The product default ACL
(:mod:`kumocore.http.acl_default`) opens liveness and the API document to anyone, injection
to trusted hosts and authenticated users, the admin API, metrics and the status page to
trusted hosts only.

Refusals use KumoMTA's status codes: ``401 <peer> not permitted <METHOD> on <path>`` (no
rule matched), ``401 <peer> denied <METHOD> on <path>`` (a Deny rule matched), ``401
HttpBasicAuth Authentication Failed for <user>``, ``400`` for an Authorization header that
cannot be decoded, ``500 try again later`` when the policy's event fails. A peer whose
Basic credentials failed ``auth_failure_limit`` times within ``auth_failure_window`` gets
``429`` with ``Retry-After`` (and a JSON error) without the policy being asked, until the
oldest failure leaves the window (kumocore addition). The outcome is stored on the request
as :class:`AuthInfo` (and the ACL's view as :class:`~kumocore.auth_info.AclAuthInfo`); the
inject handler copies its summary into the ``http_auth`` meta of each message.
"""

from __future__ import annotations

import base64
import binascii
import collections
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from kumocore.auth_info import AclAuthInfo, Identity, parse_auth_info, parse_peer_ip
from kumocore.errors import HookError, PolicyError, Rejection
from kumocore.http.acl import TRUSTED_GROUP
from kumocore.http.acl_resource import format_local_addr, http_url_resource
from kumocore.reception.client_net import client_net

if TYPE_CHECKING:
    from kumocore.config import HttpListenerConfig
    from kumocore.policy.policy_host import PolicyHost

# aiohttp 3.14 wants typed request keys; older versions only have plain strings.
AUTH_KEY: Any = (
    web.RequestKey("kumocore.auth", object) if hasattr(web, "RequestKey") else "kumocore.auth")
ACL_AUTH_KEY: Any = (
    web.RequestKey("kumocore.acl_auth", object) if hasattr(web, "RequestKey")
    else "kumocore.acl_auth")

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


def _claimed(header: str) -> Identity:
    """Who a header claims to be (for a refusal's text)."""
    try:
        return Identity(_basic_credentials(header)[0], "HttpBasicAuth")
    except ValueError:
        return Identity("", "BearerToken")


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
    """Recent HTTP Basic failures per client (an IPv4 address, an IPv6 /64:
    :mod:`kumocore.reception.client_net`), to answer ``429`` beyond ``limit``."""

    #: Peers remembered at most; older entries are dropped first (bounded memory).
    MAX_PEERS = 10_000

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._failures: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict())

    def retry_after(self, peer: str, now: float | None = None) -> int | None:
        """Seconds the peer must wait, or None when it may try again now."""
        peer = client_net(peer)
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
        peer = client_net(peer)
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


class _Refused(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


def _local_addr(request: web.Request) -> str:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return format_local_addr(str(sockname[0]), int(sockname[1]))
    return "unknown"


def make_auth_middleware(runtime: PolicyHost, config: HttpListenerConfig) -> Any:
    """The aiohttp middleware enforcing the rules in the module docstring."""
    failures = AuthFailures(config.auth_failure_limit, config.auth_failure_window)

    async def validate(header: str) -> tuple[Identity, bool | Mapping[str, Any]]:
        """The identity the header claims and the policy's answer; ValueError if the
        header is malformed or its scheme unsupported."""
        scheme, _, token = header.strip().partition(" ")
        if scheme == "Bearer" and token.strip() and runtime.hooks.implemented(
                "http_server_validate_auth_bearer"):
            answer = await runtime.hooks.http_server_validate_auth_bearer(token.strip())
            return Identity("", "BearerToken"), answer
        user, password = _basic_credentials(header)
        answer = await runtime.hooks.http_server_validate_auth_basic(user, password)
        return Identity(user, "HttpBasicAuth"), answer

    def account(attempted: Identity, success: bool, session: AclAuthInfo) -> None:
        acct = runtime.http_access.acct
        if acct is not None:
            acct.authentication(attempted, success, session)

    async def authenticate(
        peer: str, header: str, session: AclAuthInfo
    ) -> tuple[str | None, AclAuthInfo]:
        """The user and what the policy says about them; raises :class:`_Refused`."""
        wait = failures.retry_after(peer)
        if wait is not None:
            raise _Refused(_too_many_failures(peer, wait))
        try:
            attempted, valid = await validate(header)
            extra = parse_auth_info(valid) if not isinstance(valid, bool) else AclAuthInfo()
        except ValueError:
            failures.failed(peer)
            raise _Refused(web.Response(
                status=400, text="Malformed or unsupported Authorization header")) from None
        except Rejection:
            attempted, valid, extra = _claimed(header), False, AclAuthInfo()
        except (PolicyError, HookError):
            raise _Refused(web.Response(status=500, text="try again later")) from None
        if valid is False:
            account(attempted, False, session)
            failures.failed(peer)
            raise _Refused(web.Response(status=401, text=(
                f"{attempted.context} Authentication Failed for {attempted.identity}")))
        # KumoMTA: a returned AuthInfo lists the session's identities itself.
        info = AclAuthInfo(None, (attempted,)) if valid is True else extra
        if not attempted.identity and info.identities:
            attempted = info.identities[0]  # a token: its owner, as KumoMTA logs it
        account(attempted, True, session.merged(info))
        # The http_auth meta: the Basic user, else the first named identity, else the peer.
        named = [i.identity for i in info.identities if i.identity]
        return (attempted.identity or (named[0] if named else None)), info

    @web.middleware
    async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = request.remote or ""
        trusted = bool(peer) and config.trusted_hosts.contains(peer)
        info = AclAuthInfo(parse_peer_ip(peer), (), (TRUSTED_GROUP,) if trusted else ())
        user: str | None = None
        header = request.headers.get("Authorization")
        if header is not None:
            try:
                user, authenticated = await authenticate(peer, header, info)
            except _Refused as refused:
                return refused.response
            info = info.merged(authenticated)
        if request.match_info.http_exception is not None:
            # No route: a trusted host gets the router's 404/405, as before ACLs
            # (KumoMTA: 401); anyone else is refused without asking the policy, so that
            # made-up paths cannot each cost up to 22 get_acl_definition calls.
            if trusted:
                request[AUTH_KEY] = AuthInfo(peer, trusted, user)
                return await handler(request)
            return web.Response(
                status=401, text=f"{peer} not permitted {request.method} on {request.path}")
        resource = http_url_resource(_local_addr(request), request.path)
        try:
            decision = await runtime.http_access.query(
                resource, info, request.method)
        except (PolicyError, HookError):
            return web.Response(status=500, text="try again later")
        if not decision.allow:
            verb = "denied" if decision.explicit else "not permitted"
            return web.Response(
                status=401, text=f"{peer} {verb} {request.method} on {request.path}")
        request[AUTH_KEY] = AuthInfo(peer, trusted, user)
        request[ACL_AUTH_KEY] = info
        return await handler(request)

    return auth_middleware
