"""ACL maps: resource name -> :class:`AccessControlList`, from KumoMTA's TOML syntax.

::

    [[acl."http_listener/*/api/admin/baz"]]
    allow = true
    privileges = ["GET"]
    identity.Group = "kumomta:http-listener-trusted-ip"   # or criteria.AllOf = [...]

Each ``[[acl."<resource>"]]`` entry becomes one rule per privilege, in file order.
``kumo.aaa.load_acl_map(KEYSOURCE)`` parses a file (or ``{ key_data = '...' }``) into an
:class:`AclMap`, whose ``map:get(resource)`` answers ``get_acl_definition``.
:data:`DEFAULT_ACL_MAP` is the product default (:mod:`kumocore.http.acl_default`).

Bounds: a map file is read up to :data:`MAX_ACL_MAP_BYTES` (only a regular file: a FIFO
would hold the loop); a map or a list holds at most :data:`MAX_ACL_RULES` rules.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

from kumocore.errors import ConfigError
from kumocore.http.acl import (
    AccessControlList,
    AccessControlRule,
    parse_criteria,
    parse_identity,
    parse_rule,
)
from kumocore.http.acl_default import DEFAULT_ACL_TOML
from kumocore.policy.secrets import load_secret
from kumocore.regular_file import read_regular_file

#: Bytes of TOML an ACL map may have.
MAX_ACL_MAP_BYTES = 1024 * 1024
#: Rules one ACL map (all resources together) or one ACL list may hold.
MAX_ACL_RULES = 10_000

_ENTRY_KEYS = frozenset({"allow", "privileges", "identity", "criteria"})


class AclMap:
    """Resource name -> ACL; ``map:get(resource)`` from Lua."""

    __kumo_methods__ = True

    def __init__(self, acls: Mapping[str, AccessControlList]) -> None:
        self._acls = dict(acls)

    def get(self, resource: str) -> AccessControlList | None:
        return self._acls.get(resource)

    def resources(self) -> list[str]:
        return sorted(self._acls)


def make_access_control_list(rules: Any) -> AccessControlList:
    """``kumo.aaa.make_access_control_list { {criteria=..., privilege=..., access=...} }``."""
    if rules == {}:
        rules = []
    if isinstance(rules, (str, bytes)) or not isinstance(rules, Sequence):
        raise ConfigError(f"make_access_control_list takes a list of rules, got {rules!r:.80}")
    if len(rules) > MAX_ACL_RULES:
        raise ConfigError(
            f"make_access_control_list: an ACL holds at most {MAX_ACL_RULES} rules, "
            f"got {len(rules)}")
    try:
        return AccessControlList(tuple(parse_rule(r) for r in rules))
    except ConfigError as exc:
        raise ConfigError(f"make_access_control_list: {exc}") from None


def _entry_rules(resource: str, entry: Any) -> list[AccessControlRule]:
    where = f"acl.{resource!r}"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: each entry must be a table")
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
    if not isinstance(entry.get("allow"), bool):
        raise ConfigError(f"{where}: allow must be true or false")
    privileges = entry.get("privileges")
    if not isinstance(privileges, list) or not all(isinstance(p, str) for p in privileges):
        raise ConfigError(f"{where}: privileges must be a list of strings")
    if ("identity" in entry) == ("criteria" in entry):
        raise ConfigError(f"{where}: give exactly one of identity or criteria")
    try:
        criteria = (
            parse_identity(entry["identity"])
            if "identity" in entry
            else parse_criteria(entry["criteria"])
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return [AccessControlRule(criteria, p, entry["allow"]) for p in privileges]


def parse_acl_map(text: str | bytes) -> AclMap:
    """An :class:`AclMap` from TOML text; :class:`ConfigError` says what is wrong."""
    if len(text) > MAX_ACL_MAP_BYTES:
        raise ConfigError(f"ACL map data is larger than {MAX_ACL_MAP_BYTES} bytes")
    try:
        data = tomllib.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"failed to parse acl map data: {exc}") from None
    if set(data) - {"acl"}:
        raise ConfigError(
            f"failed to parse acl map data: unknown field(s) "
            f"{sorted(set(data) - {'acl'})}; expected only 'acl'"
        )
    table = data.get("acl", {})
    if not isinstance(table, dict):
        raise ConfigError("failed to parse acl map data: acl must be a table")
    acls: dict[str, AccessControlList] = {}
    total = 0
    for resource, entries in table.items():
        if not isinstance(entries, list):
            raise ConfigError(f'acl.{resource!r}: use [[acl."{resource}"]] entries')
        rules = [rule for entry in entries for rule in _entry_rules(resource, entry)]
        total += len(rules)
        if total > MAX_ACL_RULES:
            raise ConfigError(f"ACL map holds more than {MAX_ACL_RULES} rules")
        acls[resource] = AccessControlList(tuple(rules))
    return AclMap(acls)


def load_acl_map(source: Any) -> AclMap:
    """``kumo.aaa.load_acl_map(KEYSOURCE)``: a file name or ``{ key_data = '...' }``."""
    if isinstance(source, str):
        try:
            data = read_regular_file(source, MAX_ACL_MAP_BYTES)
        except OSError as exc:
            raise ConfigError(
                f"kumo.aaa.load_acl_map: cannot read {source!r}: {exc.strerror}"
            ) from None
    else:
        data = load_secret(source)
    return parse_acl_map(data)


DEFAULT_ACL_MAP = parse_acl_map(DEFAULT_ACL_TOML)
