"""KumoMTA's ``AuthInfo``: who a session is (peer address, identities, groups).

Every listener builds one for its sessions: HTTP (Basic or Bearer credentials, the trusted
group), SMTP (``AUTH PLAIN``/``LOGIN`` identities, or what ``smtp_server_auth_plain``
returned), the SOCKS5 proxy and xfer. Access control lists (:mod:`kumocore.http.acl`)
match rules against it, and ``kumo.aaa.query_resource_access`` takes it in its table
form, which :func:`parse_auth_info` reads.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kumocore.errors import ConfigError

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: KumoMTA's ``IdentityContext`` values.
IDENTITY_CONTEXTS = frozenset(
    {
        "SmtpAuthPlainAuthentication",
        "SmtpAuthPlainAuthorization",
        "HttpBasicAuth",
        "BearerToken",
        "ProxyAuthRfc1929",
        "LocalSystem",
        "GenericAuth",
    }
)
#: Identities or groups one auth info may carry (it is part of a cache key).
MAX_AUTH_ENTRIES = 64


@dataclass(frozen=True, slots=True)
class Identity:
    identity: str
    context: str = "GenericAuth"

    def to_dict(self) -> dict[str, str]:
        return {"identity": self.identity, "context": self.context}


@dataclass(frozen=True, slots=True)
class AclAuthInfo:
    """KumoMTA's ``AuthInfo``: who the session is, for the ACL. Hashable (a cache key)."""

    peer_address: IpAddress | None = None
    identities: tuple[Identity, ...] = ()
    groups: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "peer_address": None if self.peer_address is None else str(self.peer_address),
            "identities": [i.to_dict() for i in self.identities],
            "groups": list(self.groups),
        }

    def merged(self, other: AclAuthInfo) -> AclAuthInfo:
        """Identities and groups of both, ``self``'s peer address (KumoMTA's merge_from)."""
        return AclAuthInfo(
            self.peer_address, self.identities + other.identities, self.groups + other.groups
        )

    def public_descriptor(self) -> str:
        """KumoMTA's text for a peer: ``id=[a, b]`` or ``<Unauthenticated>``, then the IP."""
        who = (
            "<Unauthenticated>"
            if not self.identities
            else "id=[" + ", ".join(i.identity for i in self.identities) + "]"
        )
        return who if self.peer_address is None else f"{who}@ ip={self.peer_address}"


def bounded_list(value: Any, what: str) -> Sequence[Any]:
    if value is None or value == {}:
        return ()  # Lua's {} arrives as an empty dict
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"{what} must be a list, got {value!r:.80}")
    if len(value) > MAX_AUTH_ENTRIES:
        raise ConfigError(f"{what} lists {len(value)} entries; at most {MAX_AUTH_ENTRIES}")
    return value


def parse_auth_info(value: Any) -> AclAuthInfo:
    """An :class:`AclAuthInfo` from its table form (``{ identities = {...}, groups = {...},
    peer_address = '10.0.0.1' }``; every field optional)."""
    if isinstance(value, AclAuthInfo):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"an auth info must be a table, got {value!r:.80}")
    unknown = set(value) - {"peer_address", "identities", "groups"}
    if unknown:
        raise ConfigError(f"auth info: unknown field(s) {sorted(map(str, unknown))}")
    peer = value.get("peer_address")
    identities = []
    for item in bounded_list(value.get("identities"), "auth info identities"):
        if not isinstance(item, Mapping) or not isinstance(item.get("identity"), str):
            raise ConfigError(
                f"an identity must be {{identity = '...', context = '...'}}, got {item!r:.80}"
            )
        context = item.get("context", "GenericAuth")
        if context not in IDENTITY_CONTEXTS:
            raise ConfigError(
                f"unknown identity context {context!r}; one of {sorted(IDENTITY_CONTEXTS)}"
            )
        identities.append(Identity(item["identity"], context))
    groups = bounded_list(value.get("groups"), "auth info groups")
    if not all(isinstance(g, str) for g in groups):
        raise ConfigError(f"auth info groups must be strings, got {groups!r:.80}")
    address = parse_ip(peer, "peer_address") if peer is not None else None
    return AclAuthInfo(address, tuple(identities), tuple(groups))


def parse_ip(value: Any, what: str) -> IpAddress:
    try:
        return ipaddress.ip_address(str(value).strip("[]"))
    except ValueError:
        raise ConfigError(f"{what}: {value!r:.80} is not an IP address") from None


def parse_peer_ip(address: Any) -> IpAddress | None:
    """The IP of ``'10.0.0.1'``, ``'10.0.0.1:25'``, ``'::1'`` or ``'[::1]:25'``; None when
    there is none to read (a Unix socket's path, a test transport, nothing): a session's
    ``peer_address``, from what a listener or a message's meta says of the peer."""
    if not isinstance(address, str):
        return None
    has_port = address.count(":") == 1 or address.startswith("[")
    host = address.rsplit(":", 1)[0] if has_port else address
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
