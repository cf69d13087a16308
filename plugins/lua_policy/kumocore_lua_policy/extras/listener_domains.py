"""``policy-extras.listener_domains``: relay/OOB/ARF settings per domain from data files.

File format (TOML or JSON)::

    ["example.com"]                       # any listener
    relay_to = true
    ["*.example.com"]                     # wildcard: subdomains without their own entry
    log_oob = true
    ["auth-send.example.com"]
    relay_from_authz = ["username1"]      # SMTP AUTH identities allowed to relay
    [listener."127.0.0.1:25"."*.example.com"]   # only on that listener
    log_oob = false

A section holds ``kumo.make_listener_domain`` options plus ``relay_from_authz``. Sections
for the same domain in several files merge key by key, later files winning. Lookup order:
the listener's own entry for the domain, then the any-listener entry, then the ``"*"``
entry of the any-listener table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kumocore.config import ListenerDomain
from kumocore.config.cidr import split_host_port
from kumocore_lua_policy.extras.datafile import (
    build_options,
    key_path,
    load_all,
    string_list,
    table,
)
from kumocore_lua_policy.extras.domain_map import DomainMap

HELPER = "policy-extras.listener_domains"
ANY = "*"


class ListenerDomains:
    """The merged, validated tables; ``get_listener_domain`` answers the lookup event."""

    def __init__(self, files: Sequence[str | dict[str, Any]]) -> None:
        merged: dict[str, dict[str, dict[str, Any]]] = {}
        where: dict[tuple[str, str], tuple[str, str]] = {}
        load_all(HELPER, files, lambda f, data: _merge_file(f, data, merged, where))
        self._maps: dict[str, DomainMap[tuple[ListenerDomain, tuple[str, ...]]]] = {}
        for listener, domains in merged.items():
            compiled: DomainMap[tuple[ListenerDomain, tuple[str, ...]]] = DomainMap()
            for domain, params in domains.items():
                file, key = where[(listener, domain)]
                compiled[domain] = _compile(file, key, params)
            self._maps[listener] = compiled

    def get_listener_domain(
        self, domain: str, listener: str, conn_meta: Mapping[str, Any] | None = None
    ) -> ListenerDomain | None:
        for table_name, name in ((listener, domain), (ANY, domain), (ANY, ANY)):
            entries = self._maps.get(table_name)
            found = entries.get(name) if entries is not None else None
            if found is not None:
                return _with_authz(found, conn_meta or {})
        return None


def _merge_file(
    file: str,
    data: dict[str, Any],
    merged: dict[str, dict[str, dict[str, Any]]],
    where: dict[tuple[str, str], tuple[str, str]],
) -> None:
    sections: list[tuple[str, str, str, Any]] = []
    for name, value in data.items():
        if name == "listener":
            for listener, domains in table(HELPER, file, "listener", value).items():
                lkey = key_path("listener", listener)
                for domain, params in table(HELPER, file, lkey, domains).items():
                    sections.append((listener, domain, key_path(lkey, domain), params))
        else:
            sections.append((ANY, name, key_path("", name), value))
    for listener, domain, key, params in sections:
        target = merged.setdefault(listener, {}).setdefault(domain, {})
        target.update(table(HELPER, file, key, params))
        where[(listener, domain)] = (file, key)


def _compile(file: str, key: str, params: dict[str, Any]) -> tuple[ListenerDomain, tuple[str, ...]]:
    options = dict(params)
    authz = options.pop("relay_from_authz", None)
    authz_ids = (
        ()
        if authz is None
        else tuple(string_list(HELPER, file, key_path(key, "relay_from_authz"), authz))
    )
    return build_options(HELPER, file, key, ListenerDomain, options), authz_ids


def _with_authz(
    found: tuple[ListenerDomain, tuple[str, ...]], conn_meta: Mapping[str, Any]
) -> ListenerDomain:
    """An authenticated identity listed in ``relay_from_authz`` may relay from its peer IP."""
    domain, authz_ids = found
    authz_id = conn_meta.get("authz_id")
    if not authz_ids or authz_id not in authz_ids:
        return domain
    peer = str(conn_meta.get("received_from") or "")
    host = split_host_port(peer)[0] if peer else ""
    if not host:
        return domain
    options = {**domain.to_dict(), "relay_from": [host]}
    return ListenerDomain.from_options(options)
