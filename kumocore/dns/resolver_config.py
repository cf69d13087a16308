"""KumoMTA's resolver configuration table, checked and turned into :class:`ResolverSettings`.

``kumo.dns.configure_resolver``, ``kumo.dns.define_resolver('n', { Hickory = ... })`` and
the table ``kumo.dns.load_resolv_conf`` returns share one shape (KumoMTA's
``DnsResolverConfig``): ``name_servers``, ``domain``, ``search`` and an ``options`` table.
As in KumoMTA, an unknown key is an error. kumocore's resolver is dnspython, not hickory:
every option is either honoured (see :meth:`kumocore.dns.resolver.Resolver.apply`) or,
for values dnspython cannot reproduce, refused here with the option's name; none is
silently ignored. Accepted-but-inert options (``domain``, ``search``, ``ndots``,
``ip_strategy``) are inert in KumoMTA too: every lookup there asks an absolute name and
none uses hickory's ``lookup_ip``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.name

from kumocore.config.duration import parse_duration
from kumocore.dns.name_server import parse_name_server
from kumocore.errors import ConfigError

_TOP_KEYS = ("name_servers", "domain", "search", "options", "timeout")
#: Retries of an unanswered lookup (each costs a whole ``timeout``).
MAX_ATTEMPTS = 100
#: KumoMTA's structured resolver forms other than Hickory and Test (the caller handles
#: ``{ Test = ... }`` alone, :mod:`kumocore.dns.static_zones`): no equivalent in kumocore.
_OTHER_KINDS = ("Unbound", "Aggregate")
_SERVER_KEYS = ("socket_addr", "protocol", "trust_negative_responses", "bind_addr")
PROTOCOLS = ("udp", "tcp", "udp_then_tcp")
_IP_STRATEGIES = (
    "Ipv4Only",
    "Ipv6Only",
    "Ipv4AndIpv6",
    "Ipv6AndIpv4",
    "Ipv6thenIpv4",
    "Ipv4thenIpv6",
)
_HOSTS_FILE = ("Always", "Auto", "Never")
_ORDERING = ("QueryStatistics", "RoundRobin", "UserProvidedOrder")
_TTL_BOUNDS = ("positive_min_ttl", "positive_max_ttl", "negative_min_ttl", "negative_max_ttl")
#: Options whose every value kumocore can honour, by type.
_INTEGERS = ("ndots", "attempts", "cache_size", "num_concurrent_reqs")
_BOOLEANS = (
    "edns0",
    "validate",
    "recursion_desired",
    "preserve_intermediates",
    "try_tcp_on_error",
    "case_randomization",
)
#: Boolean options dnspython can reproduce for one value only: (option, that value, why).
_ONLY = {
    "preserve_intermediates": (True, "kumocore always follows CNAME chains to the answer"),
    "try_tcp_on_error": (False, "dnspython retries over TCP only after a truncated reply"),
    "case_randomization": (False, "dnspython does not randomise the case of query names"),
}
OPTION_NAMES = (
    *_INTEGERS,
    *_BOOLEANS,
    *_TTL_BOUNDS,
    "timeout",
    "ip_strategy",
    "use_hosts_file",
    "server_ordering_strategy",
    "trust_anchor_file",
)


@dataclass(frozen=True, slots=True)
class NameServerSpec:
    """One upstream: ``'IP:PORT'`` plus KumoMTA's per-server ``protocol`` and ``bind_addr``."""

    socket_addr: str
    protocol: str = "udp_then_tcp"
    bind_addr: str | None = None


@dataclass(frozen=True, slots=True)
class ResolverSettings:
    """What a resolver configuration table asks for; None means "as before / default"."""

    name_servers: tuple[NameServerSpec, ...]
    domain: str | None = None
    search: tuple[str, ...] = ()
    #: Per-query timeout and retries after a failure (KumoMTA's ``options``).
    timeout: float | None = None
    attempts: int | None = None
    #: kumocore's older top-level ``timeout``: the bound of the whole lookup.
    lifetime: float | None = None
    #: None: as before (the legacy ``configure`` leaves dnspython's choice).
    edns0: bool | None = None
    validate: bool = False
    recursion_desired: bool = True
    cache_size: int | None = None
    use_hosts_file: bool = True
    ttl_bounds: dict[str, float] = field(default_factory=dict)
    ndots: int | None = None


def _fail(where: str, message: str) -> ConfigError:
    return ConfigError(f"{where}: {message}")


def _as_list(where: str, key: str, value: Any) -> list[Any]:
    """A Lua array arrives as a list, or as a mapping keyed 1..n; accept both."""
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, Mapping) and all(isinstance(k, int) for k in value):
        return [value[k] for k in sorted(value)]
    raise _fail(where, f"{key}: expected a list, got {value!r:.80}")


def _name_server(where: str, entry: Any) -> NameServerSpec:
    if isinstance(entry, str):
        parse_name_server(entry)
        return NameServerSpec(entry)
    if not isinstance(entry, Mapping):
        raise _fail(
            where, f"name_servers: expected 'IP:PORT' or {{socket_addr=...}}, got {entry!r:.80}"
        )
    unknown = sorted(str(key) for key in entry if key not in _SERVER_KEYS)
    if unknown:
        raise _fail(
            where,
            f"name_servers: unknown name server option {unknown[0]!r} "
            f"(expected {', '.join(_SERVER_KEYS)})",
        )
    address = entry.get("socket_addr")
    if not isinstance(address, str):
        raise _fail(where, "name_servers: socket_addr ('IP:PORT') is required")
    parse_name_server(address)
    protocol = entry.get("protocol", "udp_then_tcp")
    if protocol not in PROTOCOLS:
        raise _fail(
            where, f"name_servers: protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}"
        )
    trust = entry.get("trust_negative_responses", True)
    if trust is not True:
        raise _fail(
            where,
            "name_servers: trust_negative_responses = "
            f"{trust!r} is not supported by kumocore (an NXDOMAIN answer is "
            "always believed, as with KumoMTA's default true)",
        )
    bind = entry.get("bind_addr")
    if bind is not None:
        if not isinstance(bind, str):
            raise _fail(where, f"name_servers: bind_addr must be 'IP:PORT', got {bind!r}")
        try:
            parse_name_server(bind, min_port=0)
        except ConfigError:
            raise _fail(where, f"name_servers: bind_addr {bind!r} is not 'IP:PORT'") from None
    return NameServerSpec(address, str(protocol), bind)


def _dns_name(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(where, f"{key}: expected a domain name, got {value!r:.80}")
    try:
        dns.name.from_text(value)
    except dns.exception.DNSException as err:
        raise _fail(where, f"{key}: {value!r} is not a domain name ({err})") from None
    return value


def _enum(where: str, key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise _fail(where, f"options.{key} must be one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def _options(where: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Checked ``options``: each value typed, each unsupported value refused by name."""
    checked: dict[str, Any] = {}
    for key, value in options.items():
        if key not in OPTION_NAMES:
            raise _fail(
                where,
                f"unknown resolver option {key!r} "
                f"(expected one of {', '.join(sorted(OPTION_NAMES))})",
            )
        if key in _INTEGERS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _fail(where, f"options.{key} must be a non-negative integer, got {value!r}")
        elif key in _BOOLEANS:
            if not isinstance(value, bool):
                raise _fail(where, f"options.{key} must be true or false, got {value!r}")
            only = _ONLY.get(key)
            if only is not None and value is not only[0]:
                raise _fail(
                    where,
                    f"options.{key} = {str(value).lower()} is not supported "
                    f"by kumocore ({only[1]})",
                )
        elif key in (*_TTL_BOUNDS, "timeout"):
            value = parse_duration(value, key=f"options.{key}")
        elif key == "ip_strategy":
            _enum(where, key, value, _IP_STRATEGIES)
        elif key == "use_hosts_file":
            _enum(where, key, value, _HOSTS_FILE)
        elif key == "server_ordering_strategy":
            if _enum(where, key, value, _ORDERING) != "UserProvidedOrder":
                raise _fail(
                    where,
                    f"options.server_ordering_strategy = {value!r} is not "
                    "supported by kumocore (servers are always tried in the "
                    "order given: 'UserProvidedOrder')",
                )
        elif key == "trust_anchor_file":
            raise _fail(
                where,
                "options.trust_anchor_file is not supported: kumocore does not "
                "validate DNSSEC itself; use options.validate = true with a "
                "validating name server",
            )
        checked[key] = value
    if checked.get("attempts", 0) > MAX_ATTEMPTS:
        raise _fail(
            where, f"options.attempts must be at most {MAX_ATTEMPTS}, got {checked['attempts']}"
        )
    if checked.get("num_concurrent_reqs", 0) > 1:
        raise _fail(
            where,
            "options.num_concurrent_reqs > 1 is not supported by kumocore "
            "(name servers are asked one after another): use 0 or 1",
        )
    if "timeout" in checked and checked["timeout"] <= 0:
        raise _fail(where, "options.timeout must be more than zero")
    return checked


def _legacy_timeout(where: str, value: Any) -> float | None:
    """kumocore's own top-level ``timeout`` (a number of seconds), kept for old policies."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise _fail(where, f"timeout: expected a positive number of seconds, got {value!r}")
    return float(value)


def parse_resolver_config(table: Mapping[str, Any], where: str) -> ResolverSettings:
    """Check KumoMTA's ``DnsResolverConfig`` table; ``where`` prefixes every error."""
    kinds = sorted(str(key) for key in table if key in _OTHER_KINDS)
    if kinds:
        raise _fail(
            where,
            f"KumoMTA's '{kinds[0]}' resolver is not supported by kumocore "
            "(only the Hickory form: name_servers, domain, search, options; or Test)",
        )
    unknown = sorted(str(key) for key in table if key not in _TOP_KEYS)
    if unknown:
        raise _fail(where, f"unknown option {unknown[0]!r}; expected one of {', '.join(_TOP_KEYS)}")
    if table.get("name_servers") is None:
        raise _fail(where, "name_servers is required")
    servers = tuple(
        _name_server(where, entry)
        for entry in _as_list(where, "name_servers", table["name_servers"])
    )
    if not servers:
        raise _fail(where, "name_servers: at least one name server is required")
    raw_options = table.get("options") or {}
    if not isinstance(raw_options, Mapping):
        raise _fail(where, f"options must be a table, got {raw_options!r:.80}")
    options = _options(where, raw_options)
    lifetime = _legacy_timeout(where, table.get("timeout"))
    if lifetime is not None and ("timeout" in options or "attempts" in options):
        raise _fail(
            where,
            "timeout: give either the top-level timeout or "
            "options.timeout/options.attempts, not both",
        )
    domain = table.get("domain")
    return ResolverSettings(
        name_servers=servers,
        domain=None if domain is None else _dns_name(where, "domain", domain),
        search=tuple(
            _dns_name(where, "search", s)
            for s in _as_list(where, "search", table.get("search") or [])
        ),
        timeout=options.get("timeout"),
        attempts=options.get("attempts"),
        lifetime=lifetime,
        edns0=options.get("edns0", True),
        validate=options.get("validate", False),
        recursion_desired=options.get("recursion_desired", True),
        cache_size=options.get("cache_size"),
        use_hosts_file=options.get("use_hosts_file", "Auto") != "Never",
        ttl_bounds={key: options[key] for key in _TTL_BOUNDS if key in options},
        ndots=options.get("ndots"),
    )
