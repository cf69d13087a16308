"""``kumo.dns.load_resolv_conf([path])``: a resolv.conf file as a resolver config table.

The table has the shape ``kumo.dns.configure_resolver`` takes (KumoMTA's
``DnsResolverConfig``), so a policy can start from the system's name servers and add
options before configuring::

    local cfg = kumo.dns.load_resolv_conf()
    cfg.options.cache_size = 16384
    kumo.dns.configure_resolver(cfg)

As KumoMTA's loader does, it keeps ``nameserver`` (as ``'IP:53'``, IPv6 bracketed),
``domain`` (else the host name's domain, as the C library derives it), ``search`` (the
last ``search`` or ``domain`` line wins, as for the C library) and the ``ndots``,
``timeout``, ``attempts`` and ``edns0`` options, always present with the C library's
defaults (1, 5 s, 2, false); other directives and options are left out. The file is read
as a regular file of at most :data:`MAX_RESOLV_CONF_BYTES`.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from kumocore.config.duration import humantime
from kumocore.errors import ConfigError
from kumocore.regular_file import read_regular_file

DEFAULT_PATH = "/etc/resolv.conf"
#: A resolv.conf is a few hundred bytes; a bigger file is not one.
MAX_RESOLV_CONF_BYTES = 64 * 1024
_NUMERIC_OPTIONS = ("ndots", "timeout", "attempts")


def _name_server(where: str, text: str) -> str:
    try:
        address = ipaddress.ip_address(text.partition("%")[0])  # drop an IPv6 zone
    except ValueError:
        raise ConfigError(f"{where}: nameserver {text!r:.80} is not an IP address") from None
    return f"[{address}]:53" if address.version == 6 else f"{address}:53"


def _option(where: str, word: str, numbers: dict[str, int]) -> bool:
    """One ``options`` word into ``numbers``; True for ``edns0``."""
    name, sep, value = word.partition(":")
    if name == "edns0" and not sep:
        return True
    if name in _NUMERIC_OPTIONS and sep:
        if not value.isascii() or not value.isdigit() or len(value) > 9:
            raise ConfigError(f"{where}: options {name}:{value!r:.20} is not a number")
        numbers[name] = int(value)
    return False


def _host_domain() -> str | None:
    """``mail.corp.example`` -> ``corp.example``: the C library's fallback ``domain``."""
    domain = socket.gethostname().partition(".")[2]
    return domain or None


def parse_resolv_conf(text: str, where: str = "resolv.conf") -> dict[str, Any]:
    """The configure_resolver table for the text of a resolv.conf file."""
    servers: list[str] = []
    domain: str | None = None
    search: list[str] = []
    numbers = {"ndots": 1, "timeout": 5, "attempts": 2}
    edns0 = False
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) < 2:
            continue
        keyword, args = words[0], words[1:]
        if keyword == "nameserver":
            servers.append(_name_server(where, args[0]))
        elif keyword == "domain":
            domain = args[0]
            search = [args[0]]
        elif keyword == "search":
            search = list(args)
        elif keyword == "options":
            for word in args:
                edns0 = _option(where, word, numbers) or edns0
    table: dict[str, Any] = {
        "name_servers": servers,
        "search": [name for name in search if name != "--"],
        "options": {
            "ndots": numbers["ndots"],
            "timeout": humantime(numbers["timeout"] * 1_000_000_000),
            "attempts": numbers["attempts"],
            "edns0": edns0,
        },
    }
    domain = domain if domain is not None else _host_domain()
    if domain is not None:
        table["domain"] = domain
    return table


def load_resolv_conf(path: str | None = None) -> dict[str, Any]:
    """Read and parse ``path`` (default ``/etc/resolv.conf``); ConfigError says why not."""
    name = DEFAULT_PATH if path is None else path
    where = f"kumo.dns.load_resolv_conf: {name}"
    if not isinstance(name, str) or not name:
        raise ConfigError(f"kumo.dns.load_resolv_conf: expected a file path, got {path!r}")
    try:
        data = read_regular_file(name, MAX_RESOLV_CONF_BYTES)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_RESOLV_CONF_BYTES:
        raise ConfigError(f"{where}: larger than {MAX_RESOLV_CONF_BYTES} bytes; not a resolv.conf")
    return parse_resolv_conf(data.decode("utf-8", "replace"), where)
