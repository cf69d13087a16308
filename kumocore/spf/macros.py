"""SPF macro strings (RFC 7208 §7): parsing at record-parse time, expansion at evaluation.

A ``domain-spec`` such as ``%{ir}.%{v}._spf.%{d2}`` is parsed once into literal text and
:class:`Macro` terms, so that a malformed one makes the whole record a ``permerror`` before
anything is evaluated. Expansion needs the identities of the check (:class:`MacroValues`);
the ``p`` letter needs DNS, so the values carry an async callback for it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from kumocore.spf.result import SpfSyntaxError

#: Letters usable anywhere; ``c``, ``r`` and ``t`` only make sense in ``exp`` text (§7.2).
_LETTERS = frozenset("slodiphv")
_EXP_ONLY_LETTERS = frozenset("crt")
_DELIMITERS = frozenset(".-+,/_=")
_ESCAPES = {"%": "%", "_": " ", "-": "%20"}
#: RFC 3986 "unreserved": what an upper-case macro letter leaves unescaped.
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_TOPLABEL = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9]+(?:-+[A-Za-z0-9]+)*$")
#: A DNS name holds at most 253 characters in text form (§7.3 truncation).
MAX_NAME_LENGTH = 253


@dataclass(frozen=True, slots=True)
class Macro:
    """One ``%{...}`` term: its letter, how many right-hand parts, reversal, delimiters."""

    letter: str
    keep: int | None
    reverse: bool
    delimiters: str
    url_escape: bool


Element = str | Macro


@dataclass(frozen=True, slots=True)
class MacroString:
    """A parsed macro string; ``text`` is the source, kept for messages."""

    text: str
    elements: tuple[Element, ...]

    @property
    def ends_with_macro(self) -> bool:
        return bool(self.elements) and isinstance(self.elements[-1], Macro)


@dataclass(frozen=True, slots=True)
class MacroValues:
    """What the letters expand to during one check (§7.3)."""

    sender: str
    domain: str
    client_ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    helo: str
    receiver: str
    now: int
    #: The ``p`` letter: the client's validated host name (costs DNS queries).
    validated_name: Callable[[str], Awaitable[str]]


def _parse_macro(text: str, start: int, *, exp: bool) -> tuple[Macro, int]:
    """The ``%{...}`` term at ``text[start]`` (just after ``%{``); returns it and its end."""
    close = text.find("}", start)
    if close < 0:
        raise SpfSyntaxError(f"unterminated macro in {text!r}")
    body = text[start:close]
    match = re.fullmatch(r"([A-Za-z])([0-9]*)(r?)(.*)", body, re.DOTALL)
    if match is None:
        raise SpfSyntaxError(f"invalid macro %{{{body}}} in {text!r}")
    letter, digits, reverse, delimiters = match.groups()
    allowed = _LETTERS | _EXP_ONLY_LETTERS if exp else _LETTERS
    if letter.lower() not in allowed:
        raise SpfSyntaxError(f"macro letter {letter!r} is not allowed here in {text!r}")
    if any(char not in _DELIMITERS for char in delimiters):
        raise SpfSyntaxError(f"invalid macro delimiters {delimiters!r} in {text!r}")
    keep = None
    if digits:
        significant = digits.lstrip("0")
        if not significant:
            raise SpfSyntaxError(f"macro digit transformer must not be zero in {text!r}")
        # More parts than a name can have (127) all mean "keep everything".
        keep = int(significant) if len(significant) <= 3 else 1000
    macro = Macro(letter.lower(), keep, bool(reverse), delimiters, letter.isupper())
    return macro, close + 1


def parse_macro_string(text: str, *, exp: bool = False) -> MacroString:
    """Parse ``text``; ``exp=True`` for explanation text (spaces and ``c``/``r``/``t``)."""
    elements: list[Element] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "%":
            nxt = text[i + 1 : i + 2]
            if nxt in _ESCAPES:
                literal.append(_ESCAPES[nxt])
                i += 2
                continue
            if nxt != "{":
                raise SpfSyntaxError(f"'%' must start a macro or escape in {text!r}")
            if literal:
                elements.append("".join(literal))
                literal = []
            macro, i = _parse_macro(text, i + 2, exp=exp)
            elements.append(macro)
            continue
        if not (0x21 <= ord(char) <= 0x7E or (exp and char == " ")):
            raise SpfSyntaxError(f"invalid character {char!r} in {text!r}")
        literal.append(char)
        i += 1
    if literal:
        elements.append("".join(literal))
    return MacroString(text, tuple(elements))


def parse_domain_spec(text: str) -> MacroString:
    """A ``domain-spec``: a macro string ending in a macro or in a top label (§4.6.1)."""
    if not text:
        raise SpfSyntaxError("empty domain-spec")
    spec = parse_macro_string(text)
    if not spec.ends_with_macro:
        last = text.rstrip(".").rsplit(".", 1)
        if len(last) < 2 or not _TOPLABEL.match(last[1]) or text.endswith(".."):
            raise SpfSyntaxError(f"invalid domain-spec {text!r} (it must end in a top label)")
    return spec


def _letter_value(letter: str, values: MacroValues) -> str:
    local, _, sender_domain = values.sender.rpartition("@")
    ip = values.client_ip
    simple = {
        "s": values.sender,
        "l": local or "postmaster",
        "o": sender_domain,
        "d": values.domain,
        "h": values.helo,
        "c": str(ip),
        "r": values.receiver,
        "t": str(values.now),
        "v": "in-addr" if ip.version == 4 else "ip6",
    }
    if letter == "i":
        # IPv6 is written as 32 dot-separated nibbles, as a reverse zone would use them.
        return str(ip) if ip.version == 4 else ".".join(ip.exploded.replace(":", ""))
    return simple[letter]


def _transform(value: str, macro: Macro) -> str:
    delimiters = macro.delimiters or "."
    parts = re.split("[" + re.escape(delimiters) + "]", value)
    if macro.reverse:
        parts.reverse()
    if macro.keep is not None:
        parts = parts[-macro.keep :]
    joined = ".".join(parts)
    if not macro.url_escape:
        return joined
    return "".join(
        char if char in _UNRESERVED else "".join(f"%{byte:02X}" for byte in char.encode())
        for char in joined
    )


async def expand(spec: MacroString, values: MacroValues) -> str:
    """The text ``spec`` stands for under ``values``."""
    out: list[str] = []
    for element in spec.elements:
        if isinstance(element, str):
            out.append(element)
            continue
        if element.letter == "p":
            raw = await values.validated_name(values.domain)
        else:
            raw = _letter_value(element.letter, values)
        out.append(_transform(raw, element))
    return "".join(out)


def truncate_name(name: str) -> str:
    """Drop leading labels until the name fits in 253 characters (§7.3)."""
    while len(name.rstrip(".")) > MAX_NAME_LENGTH and "." in name:
        name = name.split(".", 1)[1]
    return name
