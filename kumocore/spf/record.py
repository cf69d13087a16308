"""Parsing one SPF record (RFC 7208 §4.5, §4.6, §5, §6) into directives and modifiers.

The whole record is parsed before any term is evaluated, so a syntax error anywhere is a
``permerror`` even when an earlier mechanism would have matched (§4.6). Modifiers may stand
anywhere in the record; unknown ones are checked for syntax and otherwise ignored (§6).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from kumocore.spf.macros import MacroString, parse_domain_spec, parse_macro_string
from kumocore.spf.result import QUALIFIERS, SpfSyntaxError

#: Longer records are refused (permerror) rather than parsed: real ones stay far below
#: this (RFC 7208 §3.4 advises under 450 bytes), and a hostile zone gains nothing.
MAX_RECORD_LENGTH = 8192

_VERSION = "v=spf1"
_MODIFIER = re.compile(r"^([A-Za-z][A-Za-z0-9_.\-]*)=(.*)$", re.DOTALL)
_MECHANISM = re.compile(r"^([+\-~?]?)([A-Za-z][A-Za-z0-9_.\-]*)(.*)$", re.DOTALL)
#: ``[/ip4-cidr][//ip6-cidr]`` at the end of an ``a`` or ``mx`` term.
_DUAL_CIDR = re.compile(r"^(?P<rest>.*?)(?:/(?P<v4>[0-9]+))?(?://(?P<v6>[0-9]+))?$", re.DOTALL)
_MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
#: Mechanisms whose evaluation queries DNS: each counts against the limit of 10 (§4.6.4).
DNS_MECHANISMS = frozenset({"include", "a", "mx", "ptr", "exists"})


@dataclass(frozen=True, slots=True)
class Mechanism:
    """One mechanism; which fields are set depends on ``kind``."""

    kind: str
    domain: MacroString | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    cidr4: int = 32
    cidr6: int = 128


@dataclass(frozen=True, slots=True)
class Directive:
    qualifier: str
    mechanism: Mechanism
    #: The term as written in the record, for the result's reason.
    text: str


@dataclass(slots=True)
class Record:
    directives: list[Directive] = field(default_factory=list)
    redirect: MacroString | None = None
    exp: MacroString | None = None

    @property
    def has_all(self) -> bool:
        """An ``all`` anywhere makes ``redirect`` ignored (§6.1)."""
        return any(d.mechanism.kind == "all" for d in self.directives)


def is_spf_record(text: str) -> bool:
    """Whether a TXT record is an SPF version 1 record (§4.5): ``v=spf1`` then space or end."""
    head = text[: len(_VERSION) + 1].lower()
    return head == _VERSION or head == _VERSION + " "


def _cidr(text: str | None, maximum: int, term: str) -> int | None:
    if text is None:
        return None
    # The grammar forbids leading zeros (``/024``) and lengths past the address size.
    if (len(text) > 1 and text.startswith("0")) or int(text) > maximum:
        raise SpfSyntaxError(f"invalid CIDR length /{text} in {term!r}")
    return int(text)


def _optional_domain(rest: str, term: str) -> MacroString | None:
    if not rest:
        return None
    if not rest.startswith(":"):
        raise SpfSyntaxError(f"invalid mechanism {term!r}")
    return parse_domain_spec(rest[1:])


def _required_domain(rest: str, term: str) -> MacroString:
    if not rest.startswith(":") or len(rest) < 2:
        raise SpfSyntaxError(f"{term!r} needs ':' and a domain")
    return parse_domain_spec(rest[1:])


def _ip_network(kind: str, rest: str, term: str) -> Mechanism:
    match = re.fullmatch(r":([^/]+)(?:/([0-9]+))?", rest)
    if match is None:
        raise SpfSyntaxError(f"invalid mechanism {term!r}")
    maximum = 32 if kind == "ip4" else 128
    length = _cidr(match.group(2), maximum, term)
    try:
        address = (ipaddress.IPv4Address if kind == "ip4" else ipaddress.IPv6Address)(
            match.group(1))
    except ValueError:
        raise SpfSyntaxError(f"invalid {kind} address in {term!r}") from None
    network = ipaddress.ip_network(f"{address}/{maximum if length is None else length}",
                                   strict=False)
    return Mechanism(kind, network=network)


def _parse_mechanism(name: str, rest: str, term: str) -> Mechanism:
    if name == "all":
        if rest:
            raise SpfSyntaxError(f"invalid mechanism {term!r}")
        return Mechanism("all")
    if name in ("include", "exists"):
        return Mechanism(name, domain=_required_domain(rest, term))
    if name == "ptr":
        return Mechanism("ptr", domain=_optional_domain(rest, term))
    if name in ("ip4", "ip6"):
        return _ip_network(name, rest, term)
    # "a" and "mx": optional domain-spec, then optional dual CIDR lengths.
    match = _DUAL_CIDR.match(rest)
    assert match is not None  # every string matches
    v4 = _cidr(match.group("v4"), 32, term)
    v6 = _cidr(match.group("v6"), 128, term)
    return Mechanism(name, domain=_optional_domain(match.group("rest"), term),
                     cidr4=32 if v4 is None else v4, cidr6=128 if v6 is None else v6)


def _add_modifier(record: Record, name: str, value: str, term: str) -> None:
    lowered = name.lower()
    if lowered in ("redirect", "exp"):
        if getattr(record, lowered) is not None:
            raise SpfSyntaxError(f"more than one {lowered!r} modifier")
        setattr(record, lowered, parse_domain_spec(value))
        return
    parse_macro_string(value, exp=True)  # unknown modifiers are ignored, if well-formed


def parse_record(text: str) -> Record:
    """Parse an SPF record; raises :class:`SpfSyntaxError` for anything malformed."""
    if len(text) > MAX_RECORD_LENGTH:
        raise SpfSyntaxError(
            f"record is {len(text)} characters long, more than the {MAX_RECORD_LENGTH} "
            "kumocore accepts")
    if not is_spf_record(text):
        raise SpfSyntaxError(f"expected 'v=spf1' at the start of {text[:40]!r}")
    record = Record()
    for term in text[len(_VERSION):].split(" "):
        if not term:
            continue  # runs of spaces are tolerated, as most verifiers do
        modifier = _MODIFIER.match(term)
        if modifier is not None:
            _add_modifier(record, modifier.group(1), modifier.group(2), term)
            continue
        match = _MECHANISM.match(term)
        name = match.group(2).lower() if match else ""
        if match is None or name not in _MECHANISMS:
            raise SpfSyntaxError(f"invalid term {term!r}")
        qualifier = match.group(1) or "+"
        assert qualifier in QUALIFIERS
        mechanism = _parse_mechanism(name, match.group(3), term)
        record.directives.append(Directive(qualifier, mechanism, term))
    return record
