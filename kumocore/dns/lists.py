"""``kumo.dns.lookup_ptr``, ``kumo.dns.rbl_lookup`` and ``kumo.dns.define_resolver``.

KumoMTA lets a policy name extra resolvers (typically one pointing at an rbldnsd serving
DNS block lists) and pass that name as an optional argument of its lookups (``lookup_mx``,
``lookup_addr`` and ``lookup_txt`` too, :mod:`kumocore.dns.policy`). The named resolvers
live in a :class:`NamedResolvers` per runtime, each with its own bounded cache; the
default resolver is the one ``kumo.dns.configure_resolver`` configures, and the only one
delivery uses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

import dns.reversename

from kumocore.dns.errors import DnsError
from kumocore.dns.mx_limits import MxLimits
from kumocore.dns.resolver import Resolver
from kumocore.dns.resolver_config import parse_resolver_config
from kumocore.dns.static_zones import make_zone_resolver
from kumocore.errors import ConfigError
from kumocore.policy.policyfn import MultipleValues, policy_function, string_argument

#: The resolver kinds of KumoMTA's define_resolver that kumocore cannot build.
_UNSUPPORTED_KINDS = ("Unbound", "System", "Aggregate")


class NamedResolvers:
    """The default resolver plus those defined by ``kumo.dns.define_resolver``."""

    def __init__(self, default: Resolver) -> None:
        self.default = default
        self._named: dict[str, Resolver] = {}

    def get(self, name: str | None) -> Resolver:
        """The default resolver for None, else the one defined under ``name`` (KumoMTA's
        error text when there is none). Each keeps its own cache of answers."""
        if name is None:
            return self.default
        resolver = self._named.get(name) if isinstance(name, str) else None
        if resolver is None:
            raise ConfigError(f"resolver {name} is not defined")
        return resolver

    def define(self, name: Any, config: Any) -> None:
        string_argument("kumo.dns.define_resolver", "NAME", name, empty=False)
        if config == "HickorySystemConfig":  # the system's resolv.conf, as the default
            self._add(name, Resolver())
            return
        if not isinstance(config, Mapping) or len(config) != 1:
            raise ConfigError(
                "kumo.dns.define_resolver: CONFIG must be 'HickorySystemConfig', "
                "{ Hickory = { name_servers = {...}, options = {...} } } or "
                "{ Test = { zones = {...} } }")
        [(kind, options)] = config.items()
        if kind in _UNSUPPORTED_KINDS:
            raise ConfigError(
                f"kumo.dns.define_resolver: KumoMTA's '{kind}' resolver is not supported by "
                "kumocore yet; use { Hickory = { name_servers = {'IP:PORT'} } }")
        if kind == "Test":
            self._add(name, make_zone_resolver(options, f"define_resolver({name!r})"))
            return
        if kind != "Hickory" or not isinstance(options, Mapping):
            raise ConfigError(f"kumo.dns.define_resolver: unknown resolver kind {kind!r}")
        settings = parse_resolver_config(options, "kumo.dns.define_resolver")
        resolver = Resolver(hosts=self.default.hosts)
        resolver.apply(settings)
        self._add(name, resolver)

    def _add(self, name: str, resolver: Resolver) -> None:
        # Its MX lookups keep to the limits kumo.dns.set_mx_* gave the default resolver.
        resolver.mx_limits = MxLimits.following(self.default.mx_limits)
        self._named[name] = resolver


def _ip(function: str, text: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An IP from ``'1.2.3.4'``, ``'1.2.3.4:25'``, ``'[::1]:25'`` or ``'::1'``."""
    if not isinstance(text, str):
        raise ConfigError(f"kumo.dns.{function}: expected an IP address string, got {text!r:.60}")
    candidates = [text]
    if text.startswith("["):
        candidates.append(text[1:].partition("]")[0])
    elif text.count(":") == 1:
        candidates.append(text.partition(":")[0])
    for candidate in candidates:
        try:
            return ipaddress.ip_address(candidate)
        except ValueError:
            continue
    raise ConfigError(
        f"kumo.dns.{function}: {text!r:.60} is not an IP address (or IP:port)")


def reverse_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """``10.0.0.1`` → ``1.0.0.10`` (nibbles for IPv6): the label order DNSBLs use."""
    name = dns.reversename.from_address(str(ip)).to_text(omit_final_dot=True)
    return name.removesuffix(".in-addr.arpa").removesuffix(".ip6.arpa")


def make_dns_list_functions(resolvers: NamedResolvers) -> dict[str, Callable[..., Any]]:
    """The ``dns.lookup_ptr``, ``dns.rbl_lookup`` and ``dns.define_resolver`` entries."""

    @policy_function(table=False)
    def define_resolver(name: str, config: Mapping[str, Any]) -> None:
        """``kumo.dns.define_resolver(NAME, { Hickory = { name_servers = {...} } })``, or
        ``{ Test = { zones = {...}, servfail = {...} } }`` answering from zone texts: a
        resolver that ``lookup_mx``, ``lookup_addr``, ``lookup_txt``, ``lookup_ptr``,
        ``rbl_lookup`` and the mail-authentication checks can be given by name."""
        resolvers.define(name, config)

    @policy_function(table=False)
    async def lookup_ptr(ip: str, resolver_name: str | None = None) -> list[str]:
        """``kumo.dns.lookup_ptr(IP)``: the PTR names (with their final dot), maybe none.

        An address without a reverse zone entry (NXDOMAIN) has no names: an empty list,
        as KumoMTA's resolvers answer, so ``policy-extras.mail_auth``'s ``iprev`` reports
        it as ``permerror`` ("has no PTR"); only a failed lookup (SERVFAIL, a timeout)
        raises, which iprev reports as ``temperror``.
        """
        address = _ip("lookup_ptr", ip)
        resolver = resolvers.get(resolver_name)
        ptr_name = dns.reversename.from_address(str(address)).to_text()
        return await resolver.lookup_records(ptr_name, "PTR") or []

    @policy_function(table=False)
    async def rbl_lookup(
        ip: str, base_domain: str, resolver_name: str | None = None
    ) -> MultipleValues:
        """``local answer, reason = kumo.dns.rbl_lookup(IP, BASE)``: nil, nil if unlisted."""
        if not isinstance(base_domain, str) or not base_domain.strip("."):
            raise ConfigError(f"kumo.dns.rbl_lookup: expected a base domain, got {base_domain!r}")
        resolver = resolvers.get(resolver_name)
        name = f"{reverse_ip(_ip('rbl_lookup', ip))}.{base_domain.strip('.')}"
        answers = await resolver.lookup_records(name, "A") or []
        if not answers:
            answers = await resolver.lookup_records(name, "AAAA") or []
        if not answers:
            return MultipleValues((None, None))
        try:
            reason: str | None = "".join(await resolver.lookup_records(name, "TXT") or [])
        except DnsError:
            reason = None  # listed, but the explanation is unavailable: still listed
        return MultipleValues((answers[0], reason or None))

    return {
        "dns.define_resolver": define_resolver,
        "dns.lookup_ptr": lookup_ptr,
        "dns.rbl_lookup": rbl_lookup,
    }
