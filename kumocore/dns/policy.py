"""The ``kumo.dns.*`` policy functions, bound to the runtime's resolvers.

A plugin contributes them from ``kumo_register_policy_functions``::

    return make_dns_functions(resolvers)  # a NamedResolvers, or one default Resolver

Lua sees ``kumo.dns.configure_resolver { name_servers = {'127.0.0.1:53'} }`` and
``kumo.dns.lookup_mx('gmail.com')``; Python policies call the same functions. Results are
plain dicts and lists so that they cross the Lua bridge and JSON unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kumocore.config.egress import IP_LOOKUP_STRATEGIES
from kumocore.dns.lists import NamedResolvers
from kumocore.dns.mx import order_addresses
from kumocore.dns.mx_sts import lookup_mx_table
from kumocore.dns.resolv_conf import load_resolv_conf as _load_resolv_conf
from kumocore.dns.resolver import Resolver
from kumocore.dns.resolver_config import parse_resolver_config
from kumocore.dns.static_zones import parse_test_zones
from kumocore.errors import ConfigError
from kumocore.policy.policyfn import policy_function


def _unwrap_hickory(options: dict[str, Any]) -> dict[str, Any]:
    """KumoMTA's structured form ``{ Hickory = { name_servers = ..., options = ... } }``."""
    if set(options) != {"Hickory"}:
        return options
    inner = options["Hickory"]
    if not isinstance(inner, Mapping):
        raise ConfigError(
            "dns.configure_resolver: Hickory must be a table of name_servers and options"
        )
    return dict(inner)


def make_dns_functions(resolvers: Resolver | NamedResolvers) -> dict[str, Callable[..., Any]]:
    """The ``dns.*`` entries for ``kumo_register_policy_functions``.

    ``lookup_mx``, ``lookup_addr`` and ``lookup_txt`` take KumoMTA's optional resolver
    name (``kumo.dns.define_resolver``); given a bare :class:`Resolver`, only the
    default one exists. The other functions configure the default resolver.
    """
    if isinstance(resolvers, Resolver):
        resolvers = NamedResolvers(resolvers)
    named = resolvers
    resolver = resolvers.default

    @policy_function(table=True)
    def configure_resolver(**options: Any) -> None:
        """Point the resolver at other name servers with KumoMTA's options (call it from
        the ``init`` event); see :mod:`kumocore.dns.resolver_config`. KumoMTA's
        ``{ Test = { zones = ..., servfail = ... } }`` makes it answer from those zones
        instead, for delivery and every check too (:mod:`kumocore.dns.static_zones`)."""
        where = "kumo.dns.configure_resolver"
        if set(options) == {"Test"}:
            resolver.use_zones(parse_test_zones(options["Test"], where))
            return
        resolver.apply(parse_resolver_config(_unwrap_hickory(options), where))

    @policy_function(table=False)
    def configure_test_resolver(config: Any) -> None:
        """``kumo.dns.configure_test_resolver { ZONE, ... }`` or ``({ zones = {...},
        servfail = {...} })``: the default resolver answers from these zone texts
        (KumoMTA's test-suite shorthand for ``configure_resolver { Test = ... }``)."""
        resolver.use_zones(parse_test_zones(config, "kumo.dns.configure_test_resolver"))

    @policy_function(table=False)
    def configure_test_mta_sts(policies: Any) -> None:
        """``kumo.dns.configure_test_mta_sts { ['example.com'] = POLICY_TEXT, ... }``: MTA-STS
        answers from these policy texts instead of DNS and HTTPS, for every resolver; a
        domain not listed has no policy (KumoMTA's test shorthand). Each text is checked
        now, so a broken one fails the policy load."""
        where = "kumo.dns.configure_test_mta_sts"
        if not isinstance(policies, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in policies.items()
        ):
            raise ConfigError(f"{where}: expected a table of domain = policy text")
        from kumocore.delivery.mta_sts_policy import PolicyError, parse_policy

        parsed = {}
        for domain, text in policies.items():
            try:
                parsed[domain.lower().rstrip(".")] = parse_policy(text, "test")
            except PolicyError as exc:
                raise ConfigError(f"{where}: {domain}: {exc}") from None
        resolver.mta_sts_test_policies = parsed

    @policy_function(table=False)
    def load_resolv_conf(path: str | None = None) -> dict[str, Any]:
        """``kumo.dns.load_resolv_conf([path])``: a table for ``configure_resolver``."""
        return _load_resolv_conf(path)

    @policy_function(table=False)
    def set_mta_sts_enabled(enabled: bool) -> None:
        """``kumo.dns.set_mta_sts_enabled(false)``: MX resolution neither fetches nor
        applies MTA-STS policies (default true, as KumoMTA)."""
        if not isinstance(enabled, bool):
            raise ConfigError(
                f"kumo.dns.set_mta_sts_enabled: expected true or false, got {enabled!r:.40}"
            )
        resolver.mta_sts_enabled = enabled

    @policy_function(table=False)
    async def lookup_mx(domain: str, resolver_name: str | None = None) -> dict[str, Any]:
        """``kumo.dns.lookup_mx(domain, resolver_name)``: the MailExchanger table from the
        default resolver, or from the one ``define_resolver`` named, with the domain's
        MTA-STS policy applied (:mod:`kumocore.dns.mx_sts`); raises on NXDOMAIN."""
        _require_name("dns.lookup_mx", domain)
        return await lookup_mx_table(named, domain, resolver_name)

    @policy_function(table=False)
    async def lookup_addr(
        name: str, resolver_name: str | None = None, strategy: str | None = None
    ) -> list[str]:
        """``kumo.dns.lookup_addr(name, resolver_name, strategy)``: IPv4 then IPv6
        addresses, or as ``strategy`` (an ``ip_lookup_strategy`` value) says, from the
        default or the named resolver; raises on NXDOMAIN."""
        _require_name("dns.lookup_addr", name)
        if strategy is not None and strategy not in IP_LOOKUP_STRATEGIES:
            raise ConfigError(
                f"kumo.dns.lookup_addr: strategy must be one of "
                f"{', '.join(IP_LOOKUP_STRATEGIES)}, got {strategy!r}"
            )
        addresses = await named.get(resolver_name).lookup_addr(name)
        return addresses if strategy is None else order_addresses(addresses, strategy)

    @policy_function(table=False)
    async def lookup_txt(name: str, resolver_name: str | None = None) -> list[str]:
        """``kumo.dns.lookup_txt(name, resolver_name)``: one string per TXT record, from the
        default or the named resolver; raises on NXDOMAIN."""
        _require_name("dns.lookup_txt", name)
        return await named.get(resolver_name).lookup_txt(name)

    return {
        "dns.configure_resolver": configure_resolver,
        "dns.configure_test_resolver": configure_test_resolver,
        "dns.configure_test_mta_sts": configure_test_mta_sts,
        "dns.load_resolv_conf": load_resolv_conf,
        "dns.set_mta_sts_enabled": set_mta_sts_enabled,
        "dns.lookup_mx": lookup_mx,
        "dns.lookup_addr": lookup_addr,
        "dns.lookup_txt": lookup_txt,
    }


def _require_name(function: str, value: object) -> None:
    """A lookup's argument must be a non-empty name: say so instead of querying garbage."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"kumo.{function}: expected a domain name string, got {value!r}")
