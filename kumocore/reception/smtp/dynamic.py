"""``smtp_server_get_dynamic_parameters``: listener parameters a policy computes for one
connection (KumoMTA's event, for IP-based virtual service on a wildcard listener).

The session asks once a client is admitted, before ``smtp_server_connection_accepted``
and the greeting (so a new ``hostname`` or ``banner`` is what the client sees), and again
after a successful ``XCLIENT``, as KumoMTA does. The answer is checked like the options
of ``kumo.start_esmtp_listener`` (:func:`kumocore.config.listeners.dynamic_overrides`)
and applied over the parameters the listener's own ``peer``/``via`` blocks gave.

A ``kumo.reject`` refuses the connection with its reply. Anything else going wrong — a
handler error, a handler slower than the hook timeout, a bad or unknown field, a field
that cannot change per connection (``listen``), a ``tls_certificate``/``tls_private_key``
that cannot be loaded (loaded here: :mod:`kumocore.reception.smtp.tls_contexts`) — is
logged with the reason and the client gets ``421 4.3.0 <hostname> technical
difficulties``: the connection cannot be served with parameters the operator did not
mean, and a temporary error lets the client retry once the policy is fixed.

A ``tls_certificate``/``tls_private_key`` kept in HashiCorp Vault is read here too, right
after the event returns, through a five-minute single-flight cache
(:func:`kumocore.config.listener_vault.read_connection_vault_sources`): a thousand
connections make one Vault read, and a renewed secret is served within five minutes. A
read that fails (Vault down, 403, a missing field) is handled like a certificate file that
cannot be loaded: the log line names the mount, the path and the status (never the
token), the client gets the same ``421 4.3.0``. KumoMTA fails the session the same way
(``4.3.0 technical difficulties``) when it cannot build the connection's TLS acceptor; it
only does so at ``STARTTLS``.

Sessions ask only when some plugin or policy implements the event (checked once per
connection), so a node without a handler pays nothing more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import structlog

from kumocore.config.listener_vault import read_connection_vault_sources
from kumocore.config.listeners import dynamic_overrides
from kumocore.errors import Rejection
from kumocore.reception.smtp.tls_contexts import CONTEXTS, needs_own_context

if TYPE_CHECKING:
    from kumocore.config import EsmtpListenerConfig
    from kumocore.node.runtime import Runtime

log = structlog.get_logger("kumocore.reception.smtp")


class _Listener(Protocol):
    @property
    def config(self) -> EsmtpListenerConfig: ...


class Configurable(Protocol):
    """What the event reads and changes of a session (structural: the session uses this
    module, not the other way round)."""

    @property
    def runtime(self) -> Runtime: ...
    @property
    def config(self) -> EsmtpListenerConfig: ...
    @property
    def listener(self) -> _Listener: ...
    @property
    def conn_meta(self) -> dict[str, Any]: ...
    @property
    def peer_ip(self) -> str: ...
    @property
    def peer_address(self) -> str: ...
    @property
    def local_ip(self) -> str: ...
    @property
    def local_address(self) -> str: ...

    def use_config(self, config: EsmtpListenerConfig) -> None: ...
    async def reject(self, rejection: Rejection, *, close: bool = False) -> None: ...
    async def technical_difficulties(self) -> None: ...


async def apply_dynamic_parameters(session: Configurable) -> bool:
    """Ask the policy for this connection's parameters and use them; False when the
    connection was refused instead (the reply is sent and the session is closing)."""
    try:
        table = await session.runtime.hooks.smtp_server_get_dynamic_parameters(
            session.local_address, session.conn_meta
        )
        if table is None:
            return True  # nil: the listener's parameters stay
        config = await read_connection_vault_sources(
            session.config.with_overrides(
                dynamic_overrides(table), session.peer_ip, session.local_ip
            ),
            "smtp_server_get_dynamic_parameters",
        )
        if needs_own_context(config, session.listener.config):
            # Loaded now (and cached for STARTTLS): a certificate file that cannot be
            # read refuses the connection below, with a log line naming it.
            await CONTEXTS.get(config)
    except Rejection as rejection:
        await session.reject(rejection, close=True)  # as KumoMTA: refused, then closed
        return False
    except Exception as exc:
        log.error(
            "smtp_server_get_dynamic_parameters failed; connection refused",
            peer=session.peer_address,
            listener=session.local_address,
            error=str(exc),
        )
        await session.technical_difficulties()
        return False
    session.use_config(config)
    return True
