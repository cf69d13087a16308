"""Envelope addresses (MAIL FROM / RCPT TO) and addresses from From:/To: style headers.

Envelope addresses are parsed strictly, per the RFC 5321 ``Path`` grammar, because they
decide routing: a lenient parser is how ``user%other@local`` or ``"a@b"@c`` tricks end up
relaying somewhere unexpected. Decisions (also in docs/message.md):

* The angle brackets are optional; ``<>`` (or ``""`` inside brackets) is the null sender.
* Source routes (``<@a,@b:user@c>``) are refused rather than silently stripped.
* The domain is lower-cased; one trailing dot is removed (``example.com.`` and
  ``example.com`` are the same DNS name and must land in the same queue). Empty labels,
  over-long labels and characters outside letters/digits/hyphen are refused.
* The local part keeps its case and its quotes (``"john doe"@x`` stays quoted so
  ``email`` can be written back into an SMTP command). ``%`` and ``!`` are ordinary
  characters: no percent-hack or bang-path routing is ever applied.
* UTF-8 (SMTPUTF8, RFC 6531) is allowed in both parts; control characters never are.
* Only IPv4 and ``IPv6:`` address literals are accepted as a domain literal.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

# Header addresses live in their own module; re-exported here, where they always were.
from kumocore.mail.header_address import (
    AddressGroup,
    AddressHeader,
    HeaderAddress,
    NotSingleAddressError,
    parse_address_header,
)
from kumocore.policy.policyfn import lua_type_name

__all__ = [
    "NULL_SENDER",
    "AddressError",
    "AddressGroup",
    "AddressHeader",
    "EnvelopeAddress",
    "HeaderAddress",
    "NotSingleAddressError",
    "parse_address_header",
    "parse_envelope_address",
]

_MAX_LOCAL = 256  # RFC 5321 says 64; VERP/SRS senders exceed it, so we cap abuse only.
_MAX_DOMAIN = 255
_MAX_LABEL = 63

_ATEXT = r"A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff"
_DOT_STRING = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*")
_QUOTED = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010ffff]|\\[\x20-\x7e])*"')
_LABEL = re.compile(
    r"[A-Za-z0-9\u0080-\U0010ffff](?:[A-Za-z0-9\-\u0080-\U0010ffff]*"
    r"[A-Za-z0-9\u0080-\U0010ffff])?"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# The plain case, ``dot.string@host.name`` in ASCII without brackets: one match decides
# what the general path below checks step by step (a recovery scan parses a million
# recipients). Anything else, valid or not, goes the general way.
_ASCII_ATEXT = r"A-Za-z0-9!#$%&'*+\-/=?^_`{|}~"
_PLAIN = re.compile(rf"([{_ASCII_ATEXT}]+(?:\.[{_ASCII_ATEXT}]+)*)@([A-Za-z0-9.\-]+)")


class AddressError(ValueError):
    """An address that is not acceptable in an SMTP envelope; ``reason`` says why."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"invalid address {text!r}: {reason}")
        self.text = text
        self.reason = reason


@dataclass(frozen=True, slots=True)
class EnvelopeAddress:
    """An envelope sender or recipient: ``user@domain``, or the null sender ``<>``."""

    user: str
    domain: str

    @property
    def email(self) -> str:
        """``user@domain``; the empty string for the null sender."""
        if not self.domain:
            return ""
        return f"{self.user}@{self.domain}"

    @property
    def is_null(self) -> bool:
        return not self.domain

    def __str__(self) -> str:
        return self.email


NULL_SENDER = EnvelopeAddress("", "")


def recipient_json(recipients: Sequence[EnvelopeAddress]) -> str | list[str]:
    """The ``recipient`` of KumoMTA's JSON about a message (admin API, traces, trace
    header, spool meta): the address for one recipient, a list for a batch (serde's
    one-or-many, preferring one)."""
    return recipients[0].email if len(recipients) == 1 else [r.email for r in recipients]


def parse_envelope_address(text: str, *, allow_null: bool = True) -> EnvelopeAddress:
    """Parse ``user@domain`` or ``<user@domain>`` (``<>`` is the null sender).

    ``allow_null=False`` for recipients. Raises :class:`AddressError` with the reason.
    """
    if not isinstance(text, str):
        raise AddressError(repr(text), f"expected a string, got {lua_type_name(text)}")
    plain = _PLAIN.fullmatch(text)
    if plain is not None and len(text) <= _MAX_LOCAL:  # ASCII: characters are octets
        domain, problem = _domain_verdict(plain[2])
        if problem is None:
            return EnvelopeAddress(plain[1], domain)
    if _CONTROL.search(text):
        raise AddressError(text, "contains a control character")
    inner = _strip_brackets(text)
    if inner == "" or inner == '""':
        if text.startswith("<") and allow_null:
            return NULL_SENDER
        raise AddressError(text, "null address not allowed here" if text else "empty address")
    if inner.startswith("@"):
        raise AddressError(text, "source routes (@host:...) are not accepted")
    local, domain = _split(text, inner)
    return EnvelopeAddress(local, _check_domain(text, domain))


def _strip_brackets(text: str) -> str:
    if text.startswith("<"):
        if not text.endswith(">") or len(text) < 2:
            raise AddressError(text, "unbalanced angle brackets")
        inner = text[1:-1]
    else:
        inner = text
    if "<" in inner or ">" in inner:
        raise AddressError(text, "unbalanced angle brackets")
    return inner


def _split(text: str, inner: str) -> tuple[str, str]:
    """Split at the ``@`` that ends the local part (quoted local parts may contain ``@``)."""
    if inner.startswith('"'):
        m = _QUOTED.match(inner)
        if m is None:
            raise AddressError(text, "unterminated or invalid quoted local part")
        local, rest = m.group(), inner[m.end() :]
        if not rest.startswith("@"):
            raise AddressError(text, "missing @domain" if not rest else "text after quoted part")
        if local == '""':
            raise AddressError(text, "empty local part")
        domain = rest[1:]
    else:
        local, at, domain = inner.rpartition("@")
        if not at:
            raise AddressError(text, "missing @domain")
        if not local:
            raise AddressError(text, "empty local part")
        if " " in local or "\t" in local:
            raise AddressError(text, "space in local part (quote it)")
        if _DOT_STRING.fullmatch(local) is None:
            raise AddressError(text, _dot_string_problem(local))
    if not local.isascii() and not local.isprintable():
        raise AddressError(text, "non-printable character in local part")
    if len(local.encode()) > _MAX_LOCAL:
        raise AddressError(text, f"local part longer than {_MAX_LOCAL} octets")
    if not domain:
        raise AddressError(text, "missing domain")
    return local, domain


def _dot_string_problem(local: str) -> str:
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return "local part has a leading, trailing or doubled dot"
    bad = next((c for c in local if c != "." and not re.match(rf"[{_ATEXT}]", c)), "?")
    return f"character {bad!r} not allowed in an unquoted local part"


def _check_domain(text: str, domain: str) -> str:
    if domain.startswith("["):
        return _check_literal(text, domain)
    normalized, problem = _domain_verdict(domain)
    if problem is not None:
        raise AddressError(text, problem)
    return normalized


@lru_cache(maxsize=4096)
def _domain_verdict(domain: str) -> tuple[str, str | None]:
    """``(lower-case domain, None)`` or ``("", what is wrong with it)``.

    Every MAIL FROM and RCPT TO checks a domain, and a campaign repeats the same few:
    the checks (a scan for spaces, a regex per label) are remembered per domain.
    """
    if any(c.isspace() for c in domain):
        return "", "space in domain"
    if domain.endswith("."):
        domain = domain[:-1]
    if not domain:
        return "", "missing domain"
    if len(domain.encode()) > _MAX_DOMAIN:
        return "", f"domain longer than {_MAX_DOMAIN} octets"
    for label in domain.split("."):
        if not label:
            return "", "domain has an empty label"
        if len(label.encode()) > _MAX_LABEL:
            return "", f"domain label longer than {_MAX_LABEL} octets"
        if _LABEL.fullmatch(label) is None or not (label.isascii() or _is_u_label(label)):
            return "", f"invalid domain label {label!r}"
    return domain.lower(), None


def _is_u_label(label: str) -> bool:
    # Internationalised labels: letters and digits of any script, plus hyphen. This
    # refuses look-alike punctuation such as U+3002 (an IDNA dot) inside a label.
    return all(c.isalnum() or c == "-" for c in label)


def _check_literal(text: str, domain: str) -> str:
    if not domain.endswith("]"):
        raise AddressError(text, "unbalanced square brackets in domain literal")
    body = domain[1:-1]
    try:
        if body[:5].lower() == "ipv6:":
            return f"[IPv6:{ipaddress.IPv6Address(body[5:]).compressed}]"
        return f"[{ipaddress.IPv4Address(body)}]"
    except ValueError:
        raise AddressError(text, f"invalid address literal {domain!r}") from None
