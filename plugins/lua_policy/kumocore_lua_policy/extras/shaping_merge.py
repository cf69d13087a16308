"""Merging shaping blocks into one path's options, and matching providers.

Kept apart from :mod:`shaping` (loading, sites and the cache) because it is the part
that defines KumoMTA's semantics: which value wins, which options merge as maps, what a
``replace_base`` discards and when a provider applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kumocore_lua_policy.extras.shaping_rules import Block

#: Options whose tables merge key by key instead of being replaced.
_MAP_OPTIONS = ("additional_connection_limits", "additional_message_rate_throttles",
                "additional_source_selection_rates")  # fmt: skip


def apply_blocks(
    params: dict[str, Any], blocks: Sequence[Block], provider: tuple[str, str] | None = None
) -> None:
    for block in blocks:
        if block.replace_base:
            params.clear()
        for name, value in block.options.items():
            if provider is not None and name.startswith("provider_"):
                _provider_throttle(params, name, value, *provider)
            elif name in _MAP_OPTIONS:
                params[name] = {**params.get(name, {}), **value}
            else:
                params[name] = value


def _provider_throttle(
    params: dict[str, Any], name: str, value: Any, provider: str, source: str
) -> None:
    """A provider-wide limit: a named throttle every site of the provider shares."""
    if name == "provider_connection_limit":
        limits = params.setdefault("additional_connection_limits", {})
        limits[f"shaping-provider-{provider}-{source}-limit"] = value
    elif name == "provider_source_selection_rate":  # only in a provider's source block
        rates = params.setdefault("additional_source_selection_rates", {})
        rates[f"shaping-provider-{provider}-{source}-selection-rate"] = value
    else:
        rates = params.setdefault("additional_message_rate_throttles", {})
        rates[f"shaping-provider-{provider}-{source}-rate"] = value


def provider_matches(rules: Sequence[tuple[str, str]], domain: str, hosts: Sequence[str]) -> bool:
    domain = domain.lower().removesuffix(".")
    if any(kind == "DomainSuffix" and domain.endswith(text) for kind, text in rules):
        return True
    mx_rules = [(k, t) for k, t in rules if k != "DomainSuffix"]
    if not mx_rules or not hosts:
        return False
    names = [h.lower().removesuffix(".") for h in hosts]
    return all(
        any(
            (k == "MXSuffix" and n.endswith(t)) or (k == "HostName" and n == t) for k, t in mx_rules
        )
        for n in names
    )
