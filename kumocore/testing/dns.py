"""A real DNS server on loopback for tests: UDP and TCP, zones given as plain data.

Needs ``dnslib`` (``pip install kumocore[testing]``).

    zones = {
        "gmail.com": {"MX": [(5, "gmail-smtp-in.l.google.com"), (10, "alt1...")]},
        "gmail-smtp-in.l.google.com": {"A": ["127.0.0.1"]},
        "examplecorp.com": {"TXT": ["v=spf1 -all"], "TTL": 60},
    }
    with TestDnsServer(zones) as server:
        resolver = Resolver([server.address])

Names are case-insensitive, with or without the trailing dot. Record types: A, AAAA, MX
(``(pref, exchange)``; ``(0, ".")`` is a null MX), PTR, TXT (a string, split into 255-byte chunks
on the wire, or a list of chunks), CNAME, TLSA (``(usage, selector, matching_type, data)``,
``data`` as bytes or hex). ``"TTL"`` sets the zone's TTL (default 300).
An unknown name answers NXDOMAIN, a known name without the asked type answers NODATA;
a zone named ``"*"`` answers for every unknown name instead (a test node routes all mail to
its sink that way).

DNSSEC, as a validating resolver reports it: ``"SECURE": True`` in a name's records (or
``set_secure(name)``) makes answers about that name carry the AD bit — for a CNAME chain,
only when every name along it is secure — and only to queries that asked for it with AD
or DO (RFC 6840 §5.7), as real resolvers do. Nothing is signed: the AD bit is the claim.

Fault injection: ``set_servfail()`` answers SERVFAIL, ``down()`` swallows queries so the
client times out, ``up()`` restores service. Every query is recorded in ``queries`` so tests
can prove what the resolver's cache saved. The servers run in daemon threads, so sync and
async tests can use them alike.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dnslib import AAAA, CNAME, MX, PTR, QTYPE, RCODE, RR, TLSA, TXT, A, DNSRecord
from dnslib.server import DNSHandler, DNSLogger, TCPServer, UDPServer

Zones = dict[str, dict[str, Any]]

_RDATA = {"A": A, "AAAA": AAAA, "CNAME": CNAME, "PTR": PTR}
#: Without EDNS a UDP answer may be at most 512 bytes (RFC 1035 §4.2.1).
_UDP_LIMIT = 512


def _key(name: str) -> str:
    return name.lower().rstrip(".")


def _txt_chunks(value: str | Sequence[str]) -> list[bytes]:
    if isinstance(value, str):
        data = value.encode()
        return [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
    return [chunk.encode() for chunk in value]


class _Handler(DNSHandler):  # type: ignore[misc]
    def handle(self) -> None:
        if self.server.dns.is_down:
            return  # swallow the query: the client sees a timeout
        super().handle()

    def get_reply(self, data: bytes) -> bytes:
        request = DNSRecord.parse(data)
        reply = self.server.dns.answer(request, self.protocol)
        packed: bytes = reply.pack()
        limit = _UDP_LIMIT
        if request.ar and any(rr.rtype == QTYPE.OPT for rr in request.ar):
            limit = max(_UDP_LIMIT, next(rr.rclass for rr in request.ar if rr.rtype == QTYPE.OPT))
        if self.protocol == "udp" and len(packed) > limit:
            # Keep the question (dnslib's truncate() drops it and clients then reject the
            # reply); TC=1 tells the client to retry over TCP.
            truncated = request.reply()
            truncated.header.tc = 1
            packed = truncated.pack()
        return packed


class TestDnsServer:
    """Authoritative-style DNS server for the given zones on 127.0.0.1, UDP and TCP."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        zones: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        servfail: bool = False,
        poll_interval: float = 0.005,
    ) -> None:
        # How often each server thread wakes to check for stop(): short keeps stop() fast
        # (a test node starts and stops one per test); a benchmark passes a long one, so
        # that 400 wake-ups a second do not take CPU from the MTA it is timing.
        self.poll_interval = poll_interval
        self._lock = threading.Lock()
        self._zones: Zones = {}
        for name, records in (zones or {}).items():
            self._zones[_key(name)] = dict(records)
        # None: answer normally; an empty set: SERVFAIL for every name; else for those names.
        self._servfail: set[str] | None = set() if servfail else None
        self.is_down = False
        self.queries: list[tuple[str, str, str]] = []  # (name, type, "udp"|"tcp")
        self._servers: list[socketserver.BaseServer] = []
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> TestDnsServer:
        for _ in range(20):  # the UDP port we got may be taken for TCP: try another
            udp = UDPServer(("127.0.0.1", 0), _Handler)
            port = udp.server_address[1]
            try:
                tcp = TCPServer(("127.0.0.1", port), _Handler)
            except OSError:
                udp.server_close()
                continue
            break
        else:  # pragma: no cover - the machine is out of ports
            raise RuntimeError("no free port for both UDP and TCP")
        self.port = port
        for server in (udp, tcp):
            server.dns = self
            server.logger = DNSLogger(log="-request,-reply,-truncated,-error")
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": self.poll_interval},
                daemon=True,
            )
            thread.start()
            self._servers.append(server)
        return self

    def stop(self) -> None:
        # Each shutdown() waits for its server's next poll: wait for both at once.
        stopping = [threading.Thread(target=server.shutdown) for server in self._servers]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()
        for server in self._servers:
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> TestDnsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ test controls

    def set_records(
        self, name: str, rtype: str, values: Iterable[Any] | None, *, ttl: int | None = None
    ) -> None:
        """Replace the ``rtype`` records of ``name`` (creating the name); None/[] removes them.

        ``ttl`` sets the TTL of every record of ``name``.
        """
        with self._lock:
            zone = self._zones.setdefault(_key(name), {})
            if ttl is not None:
                zone["TTL"] = ttl
            items = list(values or [])
            if items:
                zone[rtype.upper()] = items
            else:
                zone.pop(rtype.upper(), None)

    def remove_name(self, name: str) -> None:
        """Forget ``name`` entirely, so that it answers NXDOMAIN."""
        with self._lock:
            self._zones.pop(_key(name), None)

    def set_secure(self, name: str, secure: bool = True) -> None:
        """Whether answers about ``name`` carry the AD bit (the name must exist)."""
        with self._lock:
            self._zones.setdefault(_key(name), {})["SECURE"] = secure

    def set_servfail(self, enabled: bool = True, names: Iterable[str] = ()) -> None:
        """Answer SERVFAIL for ``names`` (every name when none are given)."""
        with self._lock:
            self._servfail = {_key(n) for n in names} if enabled else None

    def down(self) -> None:
        """Stop answering (queries time out) while keeping the port."""
        self.is_down = True

    def up(self) -> None:
        self.is_down = False

    def query_count(self, name: str, rtype: str | None = None) -> int:
        with self._lock:
            return sum(1 for q in self.queries if q[0] == _key(name) and rtype in (None, q[1]))

    # ------------------------------------------------------------------ answering

    def answer(self, request: DNSRecord, protocol: str) -> DNSRecord:
        name, qtype = _key(str(request.q.qname)), QTYPE[request.q.qtype]
        reply = request.reply()
        reply.header.ad = 0  # reply() copies the query's flags; AD is ours to claim
        wants_ad = bool(request.header.ad) or any(
            rr.rtype == QTYPE.OPT and rr.ttl & 0x8000 for rr in request.ar)  # the DO bit
        with self._lock:
            self.queries.append((name, qtype, protocol))
            if self._servfail is not None and (not self._servfail or name in self._servfail):
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            # Follow CNAMEs as a recursive resolver would, answering the whole chain.
            secure = wants_ad
            for _ in range(8):
                zone = self._zones.get(name, self._zones.get("*"))
                if zone is None:
                    if not reply.rr:
                        reply.header.rcode = RCODE.NXDOMAIN
                    return reply
                secure = secure and zone.get("SECURE") is True
                if "CNAME" in zone and qtype != "CNAME":
                    target = zone["CNAME"][0]
                    reply.add_answer(self._rr(name, "CNAME", target, zone))
                    name = _key(target)
                    continue
                for value in zone.get(qtype, []):
                    reply.add_answer(self._rr(name, qtype, value, zone))
                reply.header.ad = int(secure)
                return reply
        return reply

    @staticmethod
    def _rr(name: str, rtype: str, value: Any, zone: Mapping[str, Any]) -> RR:
        ttl = int(zone.get("TTL", 300))
        if rtype == "MX":
            pref, exchange = value
            rdata: Any = MX(exchange, int(pref))
        elif rtype == "TXT":
            rdata = TXT(_txt_chunks(value))
        elif rtype == "TLSA":
            usage, selector, mtype, data = value
            cert = bytes.fromhex(data) if isinstance(data, str) else bytes(data)
            rdata = TLSA(int(usage), int(selector), int(mtype), cert)
        else:
            rdata = _RDATA[rtype](value)
        return RR(name + ".", getattr(QTYPE, rtype), rdata=rdata, ttl=ttl)


def reference_zones(mx_address: str = "127.0.0.1") -> Zones:
    """Realistic MX sets of big mailbox providers, every MX host pointing at ``mx_address``."""
    mx_sets: dict[str, list[tuple[int, str]]] = {
        "gmail.com": [
            (5, "gmail-smtp-in.l.google.com"),
            (10, "alt1.gmail-smtp-in.l.google.com"),
            (20, "alt2.gmail-smtp-in.l.google.com"),
            (30, "alt3.gmail-smtp-in.l.google.com"),
            (40, "alt4.gmail-smtp-in.l.google.com"),
        ],
        "yahoo.com": [
            (1, "mta5.am0.yahoodns.net"),
            (1, "mta6.am0.yahoodns.net"),
            (1, "mta7.am0.yahoodns.net"),
        ],
        "outlook.com": [(5, "outlook-com.olc.protection.outlook.com")],
        "comcast.net": [(5, "mx1a1.comcast.net"), (5, "mx2c1.comcast.net")],
        "examplecorp.com": [(10, "mx.examplecorp.com")],
    }
    address_type = "AAAA" if ":" in mx_address else "A"
    zones: Zones = {}
    for domain, records in mx_sets.items():
        zones[domain] = {"MX": records}
        for _, host in records:
            zones.setdefault(host, {})[address_type] = [mx_address]
    return zones


def add_dkim_txt(zones: Zones, selector: str, domain: str, public_key_b64: str) -> Zones:
    """Publish a DKIM RSA key at ``selector._domainkey.domain``; returns ``zones``."""
    name = f"{selector}._domainkey.{_key(domain)}"
    zones.setdefault(name, {}).setdefault("TXT", []).append(f"v=DKIM1; k=rsa; p={public_key_b64}")
    return zones


__all__ = ["TestDnsServer", "Zones", "add_dkim_txt", "reference_zones"]
