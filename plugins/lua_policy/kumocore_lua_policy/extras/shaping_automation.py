"""The shaping helper's side of traffic shaping automation (``setup_with_automation``).

Turns the ``automation`` rules of loaded shaping data into :class:`kumocore.tsa.Rule`
objects, answers "which rules apply to a record for (domain, site)" in KumoMTA's order —
``default``, then each provider whose match covers the domain, then the site block, then
the domain block — and serves ``get_egress_path_config`` with the engine's active config
overrides laid over the shaping files' options.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kumocore.config import EgressPathConfig
from kumocore.config.duration import duration_seconds
from kumocore.throttle.spec import ThrottleSpec
from kumocore.tsa import Rule, make_rule
from kumocore_lua_policy.extras.datafile import key_path
from kumocore_lua_policy.extras.shaping import Shaping
from kumocore_lua_policy.extras.shaping_merge import provider_matches
from kumocore_lua_policy.extras.shaping_rules import Block


def _rules(blocks: Sequence[Block], *, rollup: bool) -> list[Rule]:
    rules = []
    for block in blocks:
        for n, raw in enumerate(block.automation, 1):
            trigger = raw.get("trigger", "Immediate")
            threshold = (
                None if trigger == "Immediate" else ThrottleSpec.parse(trigger["Threshold"]).limit)
            rules.append(make_rule(
                raw, origin=f"{block.file}: {key_path(block.key, 'automation')}[{n}]",
                rollup=rollup, duration=duration_seconds(raw["duration"]),
                threshold=threshold))  # fmt: skip
    return rules


class ShapingAutomation:
    """Rules of one loaded :class:`Shaping`, and its automation-aware path lookup."""

    def __init__(self, shaping: Shaping) -> None:
        self.shaping = shaping
        self.default = _rules(shaping.blocks.get("default", []), rollup=True)
        self.providers = {
            name: ([m for b in blocks for m in b.match], _rules(blocks, rollup=True))
            for name, blocks in shaping.providers.items()
        }
        self.by_site = {s: _rules(b, rollup=True) for s, b in shaping.by_site.items()}
        self.by_domain = {d: _rules(b, rollup=False) for d, b in shaping.by_domain.items()}
        self.engine: Any = None
        self._by_mx_host = any(
            kind != "DomainSuffix" for match, _ in self.providers.values() for kind, _t in match)
        every = [*self.default, *(r for _, rules in self.providers.values() for r in rules),
                 *(r for rules in (*self.by_site.values(), *self.by_domain.values())
                   for r in rules)]  # fmt: skip
        # One list of distinct patterns (not one alternation: group numbers and inline
        # flags of the operator's patterns must keep their meaning).
        self._patterns = [re.compile(p) for p in dict.fromkeys(p for r in every for p in r.regex)]
        self.count = len(self.default) + sum(len(r) for _, r in self.providers.values()) + sum(
            len(r) for r in (*self.by_site.values(), *self.by_domain.values()))

    def could_match(self, response: str, internal: bool) -> bool:
        """Whether any rule's regex is in ``response`` (one search, on the hot path)."""
        del internal  # the per-rule check (after this one) applies match_internal
        return any(pattern.search(response) for pattern in self._patterns)

    async def rules_for(self, domain: str, site_name: str) -> list[Rule]:
        domain = domain.lower()
        result = list(self.default)
        hosts: Sequence[str] = ()
        lookup = self.shaping._lookup_mx
        if self._by_mx_host and lookup is not None:  # providers matched by their MX hosts
            try:
                hosts = (await lookup(domain)).get("hosts") or ()
            except Exception:
                hosts = ()
        for match, rules in self.providers.values():
            if rules and provider_matches(match, domain, hosts):
                result.extend(rules)
        result.extend(self.by_site.get(site_name, ()))
        result.extend(self.by_domain.get(domain, ()))
        return result

    async def get_egress_path_config(self, domain: str, source: str, site_name: str) -> Any:
        overrides = self.engine.overrides_for(domain, source, site_name) if self.engine else {}
        if not overrides:
            config = self.shaping.get_egress_path_config(domain, source, site_name)
            if not isinstance(config, EgressPathConfig):
                config = await config
            return config
        params = await self.shaping.params_for(domain, source, site_name)
        params.update(overrides)
        return EgressPathConfig.from_options(params, function="shaping automation")


def setup(
    shaping: Shaping, configure: Callable[..., Any], publish: Any, subscribe: Any
) -> Mapping[str, Any]:
    """Build the engine through ``kumo.automation.configure``; the Lua helper's table."""
    automation = ShapingAutomation(shaping)
    automation.engine = configure(
        automation.rules_for, publish, subscribe, automation.could_match)

    async def get_egress_path_config(domain: str, source: str, site_name: str) -> Any:
        return await automation.get_egress_path_config(domain, source, site_name)

    return {"get_egress_path_config": get_egress_path_config, "rule_count": automation.count}
