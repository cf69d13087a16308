"""KumoMTA's ``Test`` resolver: answers from zone texts held in memory, no name server.

``kumo.dns.define_resolver('name', { Test = { zones = { ZONE, ... }, servfail = {...} } })``
(or the bare list ``{ Test = { ZONE, ... } }``), where each ZONE is the text of a master
file with an ``$ORIGIN`` line, or ``{ zone = TEXT, secure = true }`` for a zone whose
answers count as DNSSEC-validated. Answers follow KumoMTA's test resolver:

* a name under no zone's origin does not exist (NXDOMAIN);
* a name under a zone without records of the asked type exists (NODATA), even when the
  zone holds nothing at all for it;
* for any other type, a CNAME is followed (secure only when every zone along it is);
* a name listed in ``servfail`` fails as a SERVFAIL does (transient);
* every answer lives 60 seconds.

The lookups, their cache and the MailExchanger built from an MX answer are those of
:class:`~kumocore.dns.resolver.Resolver`: only where answers come from differs
(:meth:`~kumocore.dns.resolver.Resolver.use_zones`). The same table given to
``kumo.dns.configure_resolver { Test = ... }`` makes the default resolver answer from
its zones, for delivery and every check as well as for the lookups.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone

from kumocore.dns.dnspython_records import _convert
from kumocore.dns.errors import DnsError
from kumocore.dns.query_cache import _Answer
from kumocore.dns.resolver import Resolver
from kumocore.dns.resolver_config import _as_list
from kumocore.errors import ConfigError

#: How long a test answer is valid (KumoMTA's test resolver says 60 s for every answer).
ANSWER_TTL = 60.0
#: CNAMEs followed for one answer: a zone whose aliases loop must not loop the lookup.
MAX_CNAME_STEPS = 8
_TEST_KEYS = ("zones", "servfail")
_ZONE_KEYS = ("zone", "secure")


class StaticZones:
    """In-memory zones answering (name, type) queries as KumoMTA's test resolver does."""

    def __init__(
        self, zones: list[tuple[dns.zone.Zone, bool]], servfail: frozenset[dns.name.Name]
    ) -> None:
        self._zones = {zone.origin: (zone, secure) for zone, secure in zones}
        self._servfail = servfail

    def answer(self, name: str, rdtype: str, now: float) -> _Answer:
        qname = dns.name.from_text(name)
        if qname in self._servfail:
            raise DnsError(
                f"{rdtype} lookup for {name} failed: no name server could answer (SERVFAIL)",
                name=name,
                transient=True,
            )
        return self._answer(
            qname, dns.rdatatype.from_text(rdtype), now + ANSWER_TTL, MAX_CNAME_STEPS
        )

    def _answer(
        self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType, expires: float, steps: int
    ) -> _Answer:
        found = self._zone_of(qname)
        if found is None:
            return _Answer("nxdomain", (), expires)
        zone, secure = found
        node = zone.get_node(qname)
        rdataset = None if node is None else node.get_rdataset(dns.rdataclass.IN, rdtype)
        if rdataset is not None:
            text = dns.rdatatype.to_text(rdtype)
            return _Answer("ok", tuple(_convert(text, r) for r in rdataset), expires, secure)
        alias = None if node is None else node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
        if alias is not None and rdtype != dns.rdatatype.CNAME and steps > 0:
            target = self._answer(next(iter(alias)).target, rdtype, expires, steps - 1)
            return _Answer(target.status, target.records, expires, target.secure and secure)
        return _Answer("nodata", (), expires, secure)

    def _zone_of(self, qname: dns.name.Name) -> tuple[dns.zone.Zone, bool] | None:
        """The zone whose origin is the closest enclosing name of ``qname``, if any."""
        name = qname
        while name != dns.name.root:
            if name in self._zones:
                return self._zones[name]
            name = name.parent()
        return None


def make_zone_resolver(options: Any, where: str) -> Resolver:
    """A resolver answering from KumoMTA's ``Test`` table (``define_resolver``)."""
    resolver = Resolver(["127.0.0.1:53"])  # never asked: the zones answer
    resolver.use_zones(parse_test_zones(options, where))
    return resolver


def parse_test_zones(options: Any, where: str) -> StaticZones:
    """Check KumoMTA's ``Test`` table and load its zones; ``where`` prefixes errors."""
    if isinstance(options, Mapping) and any(key in _TEST_KEYS for key in options):
        unknown = sorted(str(key) for key in options if key not in _TEST_KEYS)
        if unknown:
            raise ConfigError(
                f"{where}: Test: unknown option {unknown[0]!r} (expected {', '.join(_TEST_KEYS)})"
            )
        entries, servfail = options.get("zones"), options.get("servfail") or []
    else:  # the bare list of zones
        entries, servfail = options, []
    if entries is None:
        raise ConfigError(f"{where}: Test: zones is required")
    zones = [
        _zone(where, index, entry)
        for index, entry in enumerate(_as_list(where, "Test.zones", entries), 1)
    ]
    names = frozenset(
        _servfail_name(where, value) for value in _as_list(where, "Test.servfail", servfail)
    )
    return StaticZones(zones, names)


def _zone(where: str, index: int, entry: Any) -> tuple[dns.zone.Zone, bool]:
    secure: Any = False
    if isinstance(entry, Mapping):
        unknown = sorted(str(key) for key in entry if key not in _ZONE_KEYS)
        if unknown:
            raise ConfigError(
                f"{where}: Test zone {index}: unknown option {unknown[0]!r} "
                f"(expected {', '.join(_ZONE_KEYS)})"
            )
        entry, secure = entry.get("zone"), entry.get("secure", False)
    if not isinstance(entry, str) or not isinstance(secure, bool):
        raise ConfigError(
            f"{where}: Test zone {index}: expected the zone's text or "
            "{ zone = TEXT, secure = true|false }"
        )
    try:
        # No SOA or NS is required of a test zone (check_origin=False), only an $ORIGIN.
        zone = dns.zone.from_text(entry, origin=None, relativize=False, check_origin=False)
    except dns.exception.DNSException as err:
        raise ConfigError(f"{where}: Test zone {index}: {err}") from None
    return zone, secure


def _servfail_name(where: str, value: Any) -> dns.name.Name:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: Test.servfail: expected a name, got {value!r:.60}")
    try:
        return dns.name.from_text(value.lower())
    except dns.exception.DNSException as err:
        raise ConfigError(f"{where}: Test.servfail: {value!r:.60}: {err}") from None
