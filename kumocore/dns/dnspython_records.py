"""Where kumocore meets dnspython: names going in, records coming out.

A name is asked for in one normal form (:func:`normalize_name`); each record of an answer
is kept as plain text or a tuple (:func:`_convert`), never as dnspython's objects; and the
modules dnspython would import during the first lookups are imported ahead, at start-up
(:func:`preload_dnspython`). Used by :class:`~kumocore.dns.resolver.Resolver` and by the
``Test`` resolver (:mod:`kumocore.dns.static_zones`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import dns.asyncbackend
import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from kumocore.dns.errors import DnsError


def normalize_name(name: str) -> str:
    """Absolute, lower-case, IDNA-encoded text form; DnsError for names DNS cannot hold."""
    try:
        text = dns.name.from_text(name).to_text().lower()
    except dns.exception.DNSException as err:
        raise DnsError(f"invalid DNS name {name!r}: {err}", name=name) from None
    if text == ".":  # "" parses as the root, which is never a mail destination
        raise DnsError(f"invalid DNS name {name!r}: empty", name=name)
    return text


#: The record types kumocore asks for (answers may also carry CNAME, SOA and NS records).
PRELOADED_RDTYPES = ("A", "AAAA", "MX", "TXT", "PTR", "CNAME", "TLSA", "SOA", "NS")
# dnspython leaves this one unannotated; its import of the type's module is what we want.
_rdata_class: Callable[[dns.rdataclass.RdataClass, dns.rdatatype.RdataType], object] = (
    dns.rdata.get_rdata_class
)


def preload_dnspython() -> None:
    """Import now what dnspython would import during the first lookups.

    dnspython imports its asyncio backend and ``sniffio`` on the first query, and the
    module of each record type on the first answer holding one (TXT pulls in several):
    20-70 ms of imports holding the event loop, in the middle of the first deliveries.
    Called when a :class:`Resolver` is built, i.e. at start-up before listening.
    """
    dns.asyncbackend.get_backend("asyncio")
    with contextlib.suppress(ImportError):  # optional for dnspython: asyncio is assumed
        import sniffio  # noqa: F401
    for rdtype in PRELOADED_RDTYPES:
        _rdata_class(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype))


def _convert(rdtype: str, rdata: Any) -> Any:
    if rdtype == "MX":
        return (int(rdata.preference), rdata.exchange.to_text().lower())
    if rdtype == "TXT":
        # One TXT record may be split into several <=255 byte strings (long DKIM keys);
        # consumers want the record, so rejoin them without a separator (RFC 6376 §3.6.2.2).
        return b"".join(rdata.strings).decode("utf-8", "replace")
    if rdtype in ("PTR", "CNAME"):
        return str(rdata.target.to_text())
    if rdtype == "TLSA":
        return (int(rdata.usage), int(rdata.selector), int(rdata.mtype), bytes(rdata.cert))
    return str(rdata.address)
