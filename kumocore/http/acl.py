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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kumocore.auth_info import AclAuthInfo, bounded_list, parse_ip
from kumocore.errors import ConfigError

#: The group KumoMTA gives a peer listed in the listener's ``trusted_hosts``.
TRUSTED_GROUP = "kumomta:http-listener-trusted-ip"

UNIT_IDENTITIES = frozenset({"Any", "Authenticated", "Unauthenticated"})
VALUE_IDENTITIES = frozenset({"Individual", "Group", "Machine", "MachineSet"})

#: Nesting of AllOf/AnyOf/Not a rule may have (the matcher recurses that deep).
MAX_CRITERIA_DEPTH = 16
#: Terms one AllOf/AnyOf may list, and blocks one MachineSet may list.
MAX_TERMS = 64


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
        return Criteria(kind, parse_ip(arg, "identity Machine"))
    if kind == "MachineSet":
        blocks = bounded_list(arg, "identity MachineSet")
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
        terms = bounded_list(arg, f"criteria {kind}")
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
