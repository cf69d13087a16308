"""KumoMTA's access control lists: rules, criteria, auth info, and matching.

An ACL is an ordered list of rules; the first rule whose criteria match the session's
:class:`AclAuthInfo` *and* whose privilege is the one asked for decides (``Allow`` or
``Deny``). When none matches, the caller moves on to the parent resource
(:mod:`kumocore.http.acl_check`). Criteria take KumoMTA's shapes, in Lua or JSON form::

    { Identity = { Group = 'kumomta:http-listener-trusted-ip' } }
    { Identity = { Individual = 'john' } }     { Identity = { Machine = '10.0.0.1' } }
    { Identity = { MachineSet = { '10.0.0.0/8' } } }
    { Identity = { Any = {} } }  -- also Authenticated, Unauthenticated
    { AllOf = { ... } }  { AnyOf = { ... } }  { Not = { ... } }

Rules are parsed once into :class:`AccessControlRule`, whose ``to_dict()`` gives back the
canonical form (unit identities as strings, as KumoMTA serialises them).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kumocore.errors import ConfigError

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: The group KumoMTA gives a peer listed in the listener's ``trusted_hosts``.
TRUSTED_GROUP = "kumomta:http-listener-trusted-ip"

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
UNIT_IDENTITIES = frozenset({"Any", "Authenticated", "Unauthenticated"})
VALUE_IDENTITIES = frozenset({"Individual", "Group", "Machine", "MachineSet"})

#: Nesting of AllOf/AnyOf/Not a rule may have (the matcher recurses that deep).
MAX_CRITERIA_DEPTH = 16
#: Terms one AllOf/AnyOf may list, and blocks one MachineSet may list.
MAX_TERMS = 64
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


def _list(value: Any, what: str) -> Sequence[Any]:
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
    for item in _list(value.get("identities"), "auth info identities"):
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
    groups = _list(value.get("groups"), "auth info groups")
    if not all(isinstance(g, str) for g in groups):
        raise ConfigError(f"auth info groups must be strings, got {groups!r:.80}")
    return AclAuthInfo(
        _ip(peer, "peer_address") if peer is not None else None, tuple(identities), tuple(groups)
    )


def _ip(value: Any, what: str) -> IpAddress:
    try:
        return ipaddress.ip_address(str(value).strip("[]"))
    except ValueError:
        raise ConfigError(f"{what}: {value!r:.80} is not an IP address") from None


@dataclass(frozen=True, slots=True)
class Criteria:
    """A parsed criteria term: ``kind`` is Identity's variant, or AllOf/AnyOf/Not."""

    kind: str
    value: Any = None
    terms: tuple[Criteria, ...] = ()

    def matches(self, info: AclAuthInfo) -> bool:
        if self.kind == "AllOf":
            return all(t.matches(info) for t in self.terms)
        if self.kind == "AnyOf":
            return any(t.matches(info) for t in self.terms)
        if self.kind == "Not":
            return not self.terms[0].matches(info)
        return _identity_matches(self.kind, self.value, info)

    def to_dict(self) -> Any:
        if self.kind in ("AllOf", "AnyOf"):
            return {self.kind: [t.to_dict() for t in self.terms]}
        if self.kind == "Not":
            return {"Not": self.terms[0].to_dict()}
        if self.kind in UNIT_IDENTITIES:
            return {"Identity": self.kind}
        if self.kind == "MachineSet":
            return {"Identity": {"MachineSet": [str(n) for n in self.value]}}
        return {"Identity": {self.kind: str(self.value)}}


def _identity_matches(kind: str, value: Any, info: AclAuthInfo) -> bool:
    if kind == "Any":
        return True
    if kind == "Authenticated":
        return bool(info.identities)
    if kind == "Unauthenticated":
        return not info.identities
    if kind == "Individual":
        return any(i.identity == value for i in info.identities)
    if kind == "Group":
        return value in info.groups
    if info.peer_address is None:
        return False
    if kind == "Machine":
        return bool(info.peer_address == value)
    return any(info.peer_address in net for net in value)  # MachineSet


def parse_identity(value: Any) -> Criteria:
    """``{ Group = 'x' }``, ``{ Any = {} }`` or ``'Any'`` -> a :class:`Criteria`."""
    if isinstance(value, str) and value in UNIT_IDENTITIES:
        return Criteria(value)
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ConfigError(
            f"an identity must be one of {sorted(UNIT_IDENTITIES | VALUE_IDENTITIES)}"
            f", got {value!r:.80}"
        )
    ((kind, arg),) = value.items()
    if kind in UNIT_IDENTITIES:
        return Criteria(kind)
    if kind in ("Individual", "Group"):
        if not isinstance(arg, str):
            raise ConfigError(f"identity {kind} takes a string, got {arg!r:.80}")
        return Criteria(kind, arg)
    if kind == "Machine":
        return Criteria(kind, _ip(arg, "identity Machine"))
    if kind == "MachineSet":
        blocks = _list(arg, "identity MachineSet")
        try:
            nets = tuple(ipaddress.ip_network(str(b), strict=False) for b in blocks)
        except ValueError as exc:
            raise ConfigError(f"identity MachineSet: {exc}") from None
        return Criteria(kind, nets)
    raise ConfigError(
        f"unknown identity {kind!r}; one of {sorted(UNIT_IDENTITIES | VALUE_IDENTITIES)}"
    )


def parse_criteria(value: Any, depth: int = 0) -> Criteria:
    """A criteria table (``{ Identity = ... }``, ``{ AllOf = {...} }``...)."""
    if depth > MAX_CRITERIA_DEPTH:
        raise ConfigError(f"ACL criteria nested more than {MAX_CRITERIA_DEPTH} deep")
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ConfigError(
            f"ACL criteria must be one of Identity, AllOf, AnyOf, Not; got {value!r:.80}"
        )
    ((kind, arg),) = value.items()
    if kind == "Identity":
        return parse_identity(arg)
    if kind == "Not":
        return Criteria("Not", terms=(parse_criteria(arg, depth + 1),))
    if kind in ("AllOf", "AnyOf"):
        terms = _list(arg, f"criteria {kind}")
        if len(terms) > MAX_TERMS:
            raise ConfigError(f"criteria {kind} lists {len(terms)} terms; at most {MAX_TERMS}")
        return Criteria(kind, terms=tuple(parse_criteria(t, depth + 1) for t in terms))
    raise ConfigError(f"unknown ACL criteria {kind!r}; one of Identity, AllOf, AnyOf, Not")


@dataclass(frozen=True, slots=True)
class AccessControlRule:
    criteria: Criteria
    privilege: str
    allow: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "criteria": self.criteria.to_dict(),
            "privilege": self.privilege,
            "access": "Allow" if self.allow else "Deny",
        }


def parse_rule(value: Any) -> AccessControlRule:
    """One ``{ criteria = ..., privilege = 'GET', access = 'Allow' }`` rule."""
    if not isinstance(value, Mapping) or set(value) != {"criteria", "privilege", "access"}:
        raise ConfigError(
            f"an ACL rule has exactly criteria, privilege and access; got {value!r:.80}"
        )
    if not isinstance(value["privilege"], str):
        raise ConfigError(f"ACL rule privilege must be a string, got {value['privilege']!r:.80}")
    if value["access"] not in ("Allow", "Deny"):
        raise ConfigError(f"ACL rule access must be 'Allow' or 'Deny', got {value['access']!r:.80}")
    return AccessControlRule(
        parse_criteria(value["criteria"]), value["privilege"], value["access"] == "Allow"
    )


@dataclass(frozen=True, slots=True)
class AccessControlList:
    """The ordered rules of one resource; what ``kumo.aaa.make_access_control_list``
    returns and ``get_acl_definition`` answers."""

    rules: tuple[AccessControlRule, ...]

    def decide(self, info: AclAuthInfo, privilege: str) -> AccessControlRule | None:
        """The first rule for ``privilege`` whose criteria match, or None."""
        for rule in self.rules:
            if rule.privilege == privilege and rule.criteria.matches(info):
                return rule
        return None
