"""Addresses from the hosts file (``/etc/hosts``), consulted before DNS for A and AAAA.

KumoMTA's resolver reads the system's hosts file, so ``kumo.dns.lookup_addr 'localhost'``
answers ``127.0.0.1`` and ``::1``, and an ``mx_list`` host named there is reached without a
DNS record. The file is read again when its modification time changes (looked at no more
than every :data:`RECHECK_SECONDS`), and at most :data:`MAX_BYTES` of it.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Callable

__all__ = ["HOSTS_FILE", "HostsFile", "parse_hosts"]

HOSTS_FILE = "/etc/hosts"
RECHECK_SECONDS = 5.0
#: A hosts file larger than this is read only this far (it is not a DNS zone).
MAX_BYTES = 1 << 20


def parse_hosts(text: str) -> dict[str, list[str]]:
    """``name -> addresses`` (IPv4 first, file order within a family) of a hosts file."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = line.partition("#")[0].split()
        if len(fields) < 2:
            continue
        try:
            address = str(ipaddress.ip_address(fields[0].partition("%")[0]))
        except ValueError:
            continue
        for name in fields[1:]:
            addresses = found.setdefault(name.lower().rstrip("."), [])
            if address not in addresses:
                addresses.append(address)
    for name, addresses in found.items():
        found[name] = sorted(addresses, key=lambda a: ":" in a)  # stable: IPv4 first
    return found


class HostsFile:
    """The hosts file's names, kept up to date (see the module doc)."""

    def __init__(self, path: str = HOSTS_FILE, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.path = path
        self._clock = clock
        self._names: dict[str, list[str]] = {}
        self._mtime: float | None = None
        self._checked = float("-inf")

    def lookup(self, name: str) -> list[str] | None:
        """The addresses of ``name`` (with or without its final dot), or None."""
        now = self._clock()
        if now - self._checked >= RECHECK_SECONDS:
            self._checked = now
            self._reload()
        addresses = self._names.get(name.lower().rstrip("."))
        return None if addresses is None else list(addresses)

    def _reload(self) -> None:
        try:
            mtime = os.stat(self.path).st_mtime
            if mtime == self._mtime:
                return
            with open(self.path, encoding="utf-8", errors="replace") as file:
                text = file.read(MAX_BYTES)
        except OSError:  # no hosts file (a container): DNS alone
            self._names, self._mtime = {}, None
            return
        self._names, self._mtime = parse_hosts(text), mtime
