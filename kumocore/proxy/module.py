"""The ``proxy`` policy module and KumoProxy's two events.

:class:`ProxyModule` is the plugin that contributes ``kumo.proxy`` (``require 'proxy'``
finds it there, see the Lua bridge) only to the policy run by ``kumocore proxy serve``:

* ``proxy.start_proxy_listener { ... }`` (:mod:`kumocore.proxy.options`); KumoMTA also
  kept it as ``kumo.start_proxy_listener`` for policies written against its early builds;
* ``proxy.start_http_listener { ... }`` — ``/metrics``, ``/metrics.json`` and
  ``/proxy/status`` for the listener's ``trusted_hosts``.

Both are called from ``proxy_init`` and start once it has returned. The
``proxy_server_auth_rfc1929(username, password, conn_meta)`` event decides each
authentication (:func:`authenticator`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from kumocore import hookimpl, policy_function
from kumocore.config.http_listener import HttpListenerConfig
from kumocore.config.listener_vault import keep_listener
from kumocore.http.service import ServicePolicyModule
from kumocore.policy.custom_events import custom_event_source
from kumocore.proxy.options import ProxyListenerConfig

if TYPE_CHECKING:
    from kumocore.node.runtime import Runtime
    from kumocore.proxy.session import Authenticate

log = structlog.get_logger("kumocore.proxy")

INIT_EVENT = "proxy_init"
AUTH_EVENT = "proxy_server_auth_rfc1929"
#: KumoProxy's events, called by name (they are not hooks).
PROXY_EVENTS = (INIT_EVENT, AUTH_EVENT)

class ProxyModule(ServicePolicyModule):
    """What the policy's ``proxy_init`` asked for."""

    init_event = INIT_EVENT

    def __init__(self) -> None:
        super().__init__()
        self.proxy_listeners: list[ProxyListenerConfig] = []
        self.http_listeners: list[HttpListenerConfig] = []

    @hookimpl
    def kumo_register_policy_functions(self) -> Mapping[str, Callable[..., Any]]:
        return {
            "proxy.start_proxy_listener": self.start_proxy_listener,
            "proxy.start_http_listener": self.start_http_listener,
            "start_proxy_listener": self.start_proxy_listener,
        }

    @policy_function(table=True)
    def start_proxy_listener(self, **options: Any) -> Awaitable[None] | None:
        function = "proxy.start_proxy_listener"
        self.not_started(function)
        config = ProxyListenerConfig.from_options(options, function=function)
        return keep_listener(self.proxy_listeners, config, function)

    @policy_function(table=True)
    def start_http_listener(self, **options: Any) -> Awaitable[None] | None:
        function = "proxy.start_http_listener"
        config = self.http_listener(options, function)
        return keep_listener(self.http_listeners, config, function)


def accepted(answer: Any) -> bool:
    """The event's answer: ``true``, or an AuthInfo table listing at least one identity
    (KumoProxy refuses one with none); anything else refuses."""
    if isinstance(answer, bool):
        return answer
    if isinstance(answer, Mapping):
        identities = answer.get("identities")
        if identities:
            return True
        log.warning(f"{AUTH_EVENT} returned an AuthInfo without identities; refused")
        return False
    log.warning(f"{AUTH_EVENT} returned neither a boolean nor an AuthInfo; refused",
                answer=type(answer).__name__)  # fmt: skip
    return False


def authenticator(runtime: Runtime) -> Authenticate:
    """The session's check of RFC 1929 credentials: the policy's handler decides; no
    handler, or a failing one, refuses (as KumoProxy does)."""

    async def authenticate(username: str, password: str, meta: Mapping[str, str]) -> bool:
        source = custom_event_source(runtime.pm, AUTH_EVENT)
        if source is None:
            log.warning(f"no {AUTH_EVENT} handler: authentication refused", user=username)
            return False
        try:
            answer = await source.call_custom_event(AUTH_EVENT, username, password, dict(meta))
        except Exception as exc:
            log.error("authentication callback error", user=username, error=str(exc))
            return False
        return accepted(answer)

    return authenticate
