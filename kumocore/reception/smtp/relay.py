"""The relay decision, exactly as KumoMTA's ``check_relaying`` makes it.

A recipient is *relayed* (queued for onward delivery) when any of these holds:

* the client's address is in the listener's ``relay_hosts``;
* the *sender's* domain has a listener domain whose ``relay_from`` contains the client;
* the *recipient's* domain has a listener domain with ``relay_to = true``.

Authenticating with SMTP AUTH does not by itself let a client relay, as in KumoMTA: the
policy says who may, per sender domain, with the listener-domain helper's
``relay_from_authz`` (which adds the peer to ``relay_from`` when its ``authz_id`` is
listed) or its own ``get_listener_domain``. Otherwise any account, once authenticated,
could send as any domain.

RCPT TO is also accepted, without relaying, when the recipient's domain logs OOB or ARF
reports (``log_oob``/``log_arf`` not ``Ignore``): whether such a message is kept is
decided at the end of DATA, once it is known to be a report.

Like Postfix's ``allow_untrusted_routing = no``, a client that may not relay by itself is
refused a recipient whose local part carries routing syntax (``user%other@relay-to-domain``,
``other!user@...``, ``"user@other"@...``): the ``relay_to`` domain's server might honour
the route and forward to ``other``. kumocore itself never interprets such syntax.

Listener domains come from the ``get_listener_domain`` hook first, then from the
listener's ``domains`` table. Answers are cached per connection (at most
:data:`MAX_CACHED_DOMAINS` of them) because RCPT TO asks for the same sender domain again
and again, and an abusive client must not grow the cache without bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kumocore.config import EsmtpListenerConfig, ListenerDomain
    from kumocore.mail.address import EnvelopeAddress
    from kumocore.policy.hooks import Hooks

MAX_CACHED_DOMAINS = 16
IGNORE = "Ignore"
LOG_THEN_RELAY = "LogThenRelay"
LOG_THEN_DROP = "LogThenDrop"


@dataclass(frozen=True, slots=True)
class RelayDisposition:
    """What to do with mail for one recipient: relay it, and/or look for a report."""

    relay: bool
    log_arf: str = IGNORE
    log_oob: str = IGNORE
    #: The client itself may relay (relay_hosts or relay_from), as opposed to the
    #: recipient's domain accepting mail from anyone (relay_to, report domains).
    trusted: bool = False

    @property
    def accept_rcpt_to(self) -> bool:
        return self.relay or self.log_arf != IGNORE or self.log_oob != IGNORE


class DomainLookup:
    """Listener-domain settings for one connection: the hook first, then ``domains``."""

    def __init__(
        self,
        hooks: Hooks,
        config: EsmtpListenerConfig,
        listener: str,
        conn_meta: dict[str, Any],
    ) -> None:
        self.hooks = hooks
        self.config = config
        self.listener = listener
        self.conn_meta = conn_meta
        self._cache: dict[str, ListenerDomain | None] = {}

    async def get(self, domain: str) -> ListenerDomain | None:
        key = domain.lower()
        if key in self._cache:
            return self._cache[key]
        found = await self.hooks.get_listener_domain(key, self.listener, self.conn_meta)
        if found is None:
            found = self.config.listener_domain(key)
        while len(self._cache) >= MAX_CACHED_DOMAINS:
            del self._cache[next(iter(self._cache))]
        self._cache[key] = found
        return found


async def check_relaying(
    lookup: DomainLookup,
    *,
    peer_ip: str,
    sender: EnvelopeAddress,
    recipient: EnvelopeAddress,
) -> RelayDisposition:
    """KumoMTA's relay decision for ``recipient`` (see the module docstring)."""
    trusted = lookup.config.relay_hosts.contains(peer_ip)
    if not trusted and sender.domain:
        sender_domain = await lookup.get(sender.domain)
        trusted = sender_domain is not None and sender_domain.relay_from.contains(peer_ip)
    recipient_domain = await lookup.get(recipient.domain)
    if recipient_domain is None:
        return RelayDisposition(relay=trusted, trusted=trusted)
    return RelayDisposition(
        relay=trusted or recipient_domain.relay_to,
        log_arf=recipient_domain.log_arf,
        log_oob=recipient_domain.log_oob,
        trusted=trusted,
    )


def has_routing_syntax(local_part: str) -> bool:
    """Whether a local part carries source-routing syntax (``%``-hack, ``!`` path, or a
    quoted ``@``) that a downstream server might still honour."""
    return any(c in local_part for c in "%!@")
