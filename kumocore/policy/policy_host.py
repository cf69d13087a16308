"""What the built-in plugin and the node-level ``kumo.*`` functions need from the process.

:class:`kumocore.node.runtime.Runtime` is the one implementation; the built-in plugin
(:mod:`kumocore.policy.builtins`) and the modules making policy functions take this narrow view
instead of importing the runtime, which itself builds the built-in plugin — the protocol
keeps that dependency one-way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from kumocore.errors import ConfigError

if TYPE_CHECKING:
    import pluggy

    from kumocore.config.defined import ServerConfig
    from kumocore.dns import Resolver
    from kumocore.http.acl_check import AccessControl
    from kumocore.http.inject_rate import RecipientRateLimit
    from kumocore.node.services import Services
    from kumocore.policy.hooks import Hooks
    from kumocore.policy.validation import ValidationReport
    from kumocore.tsa.engine import TsaEngine


class PolicyHost(Protocol):
    """The policy's view of its process: what ``init`` defined, and the running services."""

    #: Traffic shaping automation, set by ``kumo.automation.configure`` during ``init``.
    tsa: TsaEngine | None
    #: HTTP access control (``kumo.aaa``): the policy's ACLs and their caches.
    http_access: AccessControl
    #: ``kumo.set_httpinject_recipient_rate_limit``, shared by the node's HTTP listeners.
    httpinject_rate_limit: RecipientRateLimit

    @property
    def hostname(self) -> str: ...

    @property
    def config(self) -> ServerConfig: ...

    @property
    def resolver(self) -> Resolver: ...

    @property
    def hooks(self) -> Hooks: ...

    @property
    def pm(self) -> pluggy.PluginManager: ...

    @property
    def validation(self) -> ValidationReport: ...

    @property
    def services(self) -> Services | None:
        """The started node's services; None while the policy loads."""
        ...


def running(host: PolicyHost, what: str) -> Services:
    """The host's services, or a clear error for a function called before the start."""
    services = host.services
    if services is None:
        raise ConfigError(
            f"{what}: the server is not running yet (call it from an event handler, not "
            "while the policy loads)")
    return services
