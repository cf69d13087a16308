"""The ``kumo.dns.*`` policy functions, bound to one :class:`~kumocore.dns.resolver.Resolver`.

A plugin contributes them from ``kumo_register_policy_functions``::

    return make_dns_functions(resolver)

Lua sees ``kumo.dns.configure_resolver { name_servers = {'127.0.0.1:53'} }`` and
``kumo.dns.lookup_mx('gmail.com')``; Python policies call the same functions. Results are
plain dicts and lists so that they cross the Lua bridge and JSON unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kumocore.config.egress import IP_LOOKUP_STRATEGIES
from kumocore.dns.mx import order_addresses
from kumocore.dns.resolver import Resolver
from kumocore.errors import ConfigError
from kumocore.policy.policyfn import policy_function

_RESOLVER_OPTIONS = ("name_servers", "timeout", "options")
#: KumoMTA's resolver ``options`` kumocore acts on (the rest are refused, never ignored).
_OPTIONS = ("validate",)


def _as_list(value: Any) -> list[Any]:
    """A Lua array arrives as a list, or as a mapping keyed 1..n; accept both."""
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, Mapping) and all(isinstance(key, int) for key in value):
        return [value[key] for key in sorted(value)]
    raise ConfigError(f"name_servers: expected a list of 'IP:PORT' strings, got {value!r}")


def _name_server_spec(entry: Any) -> str:
    """``'IP:PORT'``, or KumoMTA's table form ``{ socket_addr = 'IP:PORT' }``."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, Mapping):
        unknown = sorted(str(key) for key in entry if key != "socket_addr")
        if unknown:
            raise ConfigError(
                f"name_servers: unknown name server option {unknown[0]!r}; "
                "only 'socket_addr' is supported"
            )
        if isinstance(entry.get("socket_addr"), str):
            return str(entry["socket_addr"])
    raise ConfigError(f"name_servers: expected 'IP:PORT' or {{socket_addr=...}}, got {entry!r}")


def _timeout(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"timeout: expected a positive number of seconds, got {value!r}")
    return float(value)


def _validate(options: Any) -> bool:
    """``options = { validate = true }``: the name servers validate DNSSEC (for DANE)."""
    if options is None:
        return False
    if not isinstance(options, Mapping):
        raise ConfigError(f"dns.configure_resolver: options must be a table, got {options!r}")
    for key in options:
        if key not in _OPTIONS:
            raise ConfigError(
                f"dns.configure_resolver: resolver option {key!r} is not supported by "
                f"kumocore yet (supported: {', '.join(_OPTIONS)})")
    value = options.get("validate", False)
    if not isinstance(value, bool):
        raise ConfigError(f"dns.configure_resolver: options.validate must be true or false, "
                          f"got {value!r}")
    return value


def _unwrap_hickory(options: dict[str, Any]) -> dict[str, Any]:
    """KumoMTA's structured form ``{ Hickory = { name_servers = ..., options = ... } }``."""
    if set(options) != {"Hickory"}:
        return options
    inner = options["Hickory"]
    if not isinstance(inner, Mapping):
        raise ConfigError("dns.configure_resolver: Hickory must be a table of name_servers "
                          "and options")
    return dict(inner)


def _default_resolver_only(resolver_name: str | None) -> None:
    # KumoMTA's lookups take an optional resolver name (kumo.dns.define_resolver); say
    # plainly that it is unsupported rather than silently querying the default resolver.
    if resolver_name is not None:
        raise ConfigError(
            f"resolver_name: named resolvers are not supported (got {resolver_name!r})"
        )


def make_dns_functions(resolver: Resolver) -> dict[str, Callable[..., Any]]:
    """The ``dns.*`` entries for ``kumo_register_policy_functions``."""

    @policy_function(table=True)
    def configure_resolver(**options: Any) -> None:
        """Point the resolver at other name servers (call it from the ``init`` event);
        ``options.validate``: they validate DNSSEC, so DANE may believe their AD bit."""
        options = _unwrap_hickory(options)
        for key in options:
            if key not in _RESOLVER_OPTIONS:
                raise ConfigError(
                    f"dns.configure_resolver: unknown option {key!r}; "
                    f"expected one of {', '.join(_RESOLVER_OPTIONS)}"
                )
        if options.get("name_servers") is None:
            raise ConfigError("dns.configure_resolver: name_servers is required")
        specs = [_name_server_spec(entry) for entry in _as_list(options["name_servers"])]
        resolver.configure(specs, timeout=_timeout(options.get("timeout")),
                           validate=_validate(options.get("options")))

    @policy_function(table=False)
    async def lookup_mx(domain: str, resolver_name: str | None = None) -> dict[str, Any]:
        """``kumo.dns.lookup_mx(domain)``: the MailExchanger table; raises on NXDOMAIN."""
        _default_resolver_only(resolver_name)
        _require_name("dns.lookup_mx", domain)
        return (await resolver.lookup_mx(domain)).to_policy_table()

    @policy_function(table=False)
    async def lookup_addr(
        name: str, resolver_name: str | None = None, strategy: str | None = None
    ) -> list[str]:
        """``kumo.dns.lookup_addr(name, resolver, strategy)``: IPv4 then IPv6 addresses,
        or as ``strategy`` (an ``ip_lookup_strategy`` value) says; raises on NXDOMAIN."""
        _default_resolver_only(resolver_name)
        _require_name("dns.lookup_addr", name)
        if strategy is not None and strategy not in IP_LOOKUP_STRATEGIES:
            raise ConfigError(f"kumo.dns.lookup_addr: strategy must be one of "
                              f"{', '.join(IP_LOOKUP_STRATEGIES)}, got {strategy!r}")
        addresses = await resolver.lookup_addr(name)
        return addresses if strategy is None else order_addresses(addresses, strategy)

    @policy_function(table=False)
    async def lookup_txt(name: str, resolver_name: str | None = None) -> list[str]:
        """``kumo.dns.lookup_txt(name)``: one string per TXT record; raises on NXDOMAIN."""
        _default_resolver_only(resolver_name)
        _require_name("dns.lookup_txt", name)
        return await resolver.lookup_txt(name)

    return {
        "dns.configure_resolver": configure_resolver,
        "dns.lookup_mx": lookup_mx,
        "dns.lookup_addr": lookup_addr,
        "dns.lookup_txt": lookup_txt,
    }


def _require_name(function: str, value: object) -> None:
    """A lookup's argument must be a non-empty name: say so instead of querying garbage."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"kumo.{function}: expected a domain name string, got {value!r}")
