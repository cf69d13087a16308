"""The one error a DNS lookup raises, in a leaf module: the resolver and the pieces it is
built from (:mod:`kumocore.dns.mx_limits`) both raise it, without importing each other."""

from __future__ import annotations


class DnsError(Exception):
    """A DNS lookup failed. ``transient`` says whether trying again later may succeed.

    NXDOMAIN (the name does not exist) is permanent: delivery bounces. SERVFAIL, REFUSED and
    timeouts are transient: delivery defers and retries.
    """

    def __init__(self, message: str, *, name: str = "", transient: bool = False) -> None:
        super().__init__(message)
        self.name = name
        self.transient = transient
