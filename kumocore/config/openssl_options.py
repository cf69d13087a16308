"""``make_egress_path``'s ``openssl_options``: OpenSSL option flags by name.

KumoMTA takes the names of its OpenSSL binding's ``SslOptions`` flags joined by ``|``
(``"NO_TLSV1|NO_TLSV1_1"``), each spelled exactly (no spaces around the ``|``), and
applies them by clearing every flag it can name and setting the given ones: the value
*replaces* the library's defaults for those flags (``NO_COMPRESSION`` among them) and
leaves the flags it has no name for as they were.

kumocore does the same on the client context of each connection. The bit values are
OpenSSL 3's (``SSL_OP_*`` in ``openssl/ssl.h``); those Python's :mod:`ssl` also exports
are checked against it by the tests. Flags OpenSSL 3 retired (``NO_SSLV2``,
``SINGLE_DH_USE``, ``SINGLE_ECDH_USE``) are accepted and are 0, as there.
"""

from __future__ import annotations

import ssl
import warnings
from typing import Any

__all__ = [
    "NAMED_FLAGS",
    "apply_openssl_options",
    "checked_openssl_options",
    "parse_openssl_options",
]


def _bit(n: int) -> int:
    return 1 << n


_TLSEXT_PADDING = _bit(4)
_SAFARI_ECDHE_ECDSA_BUG = _bit(6)
_DONT_INSERT_EMPTY_FRAGMENTS = _bit(11)
_CRYPTOPRO_TLSEXT_BUG = _bit(31)
# OpenSSL numbers TLS 1.2 before 1.1.
_NO_SSLV3, _NO_TLSV1, _NO_TLSV1_2, _NO_TLSV1_1, _NO_TLSV1_3 = (
    _bit(n) for n in (25, 26, 27, 28, 29)
)

#: Every name KumoMTA accepts, with its OpenSSL 3 value, in its binding's order.
NAMED_FLAGS: dict[str, int] = {
    "DONT_INSERT_EMPTY_FRAGMENTS": _DONT_INSERT_EMPTY_FRAGMENTS,
    # OpenSSL 3's "reasonable default" set of bug workarounds (SSL_OP_ALL; Python's
    # ssl.OP_ALL leaves DONT_INSERT_EMPTY_FRAGMENTS out of it).
    "ALL": _CRYPTOPRO_TLSEXT_BUG | _DONT_INSERT_EMPTY_FRAGMENTS | _TLSEXT_PADDING
    | _SAFARI_ECDHE_ECDSA_BUG,
    "NO_QUERY_MTU": _bit(12),
    "COOKIE_EXCHANGE": _bit(13),
    "NO_TICKET": _bit(14),
    "NO_SESSION_RESUMPTION_ON_RENEGOTIATION": _bit(16),
    "NO_COMPRESSION": _bit(17),
    "ALLOW_UNSAFE_LEGACY_RENEGOTIATION": _bit(18),
    "SINGLE_ECDH_USE": 0,
    "SINGLE_DH_USE": 0,
    "CIPHER_SERVER_PREFERENCE": _bit(22),
    "TLS_ROLLBACK_BUG": _bit(23),
    "NO_SSLV2": 0,
    "NO_SSLV3": _NO_SSLV3,
    "NO_TLSV1": _NO_TLSV1,
    "NO_TLSV1_1": _NO_TLSV1_1,
    "NO_TLSV1_2": _NO_TLSV1_2,
    "NO_TLSV1_3": _NO_TLSV1_3,
    # DTLS shares the TLS bits in OpenSSL 3 (a client context here is never DTLS).
    "NO_DTLSV1": _NO_TLSV1,
    "NO_DTLSV1_2": _NO_TLSV1_2,
    "NO_SSL_MASK": _NO_SSLV3 | _NO_TLSV1 | _NO_TLSV1_1 | _NO_TLSV1_2 | _NO_TLSV1_3,
    "NO_RENEGOTIATION": _bit(30),
    "ENABLE_MIDDLEBOX_COMPAT": _bit(20),
    "PRIORITIZE_CHACHA": _bit(21),
}

#: The flags a value of ``openssl_options`` replaces.
_NAMED_BITS = 0
for _value in NAMED_FLAGS.values():
    _NAMED_BITS |= _value



def _listed_names() -> list[str]:
    """The names KumoMTA's error lists: its flag set's named members in order, leaving
    out those that add no bit (0-valued, or an alias of flags already listed)."""
    listed, remaining = [], _NAMED_BITS
    for name, value in NAMED_FLAGS.items():
        if value & remaining:
            listed.append(name)
            remaining &= ~value
    return listed


# Sorted as quoted (so "`NO_TLSV1_1`" comes before "`NO_TLSV1`"), as KumoMTA sorts them.
_ALLOWED = ", ".join(sorted(f"`{name}`" for name in _listed_names()))


def parse_openssl_options(text: str) -> int:
    """The flags ``text`` names (``"NAME|NAME..."``); ``ValueError`` in KumoMTA's words
    for a name it does not know (the names are case- and space-sensitive there too)."""
    flags = 0
    for name in text.split("|"):
        if name not in NAMED_FLAGS:
            raise ValueError(
                f"`{name[:64]}` is not a valid SslOption name. Possible values are "
                f"{_ALLOWED} joined together by the pipe `|` character."
            )
        flags |= NAMED_FLAGS[name]
    return flags


def checked_openssl_options(value: Any) -> str:
    """``value`` itself once it is a string of known names (the option's load check)."""
    if not isinstance(value, str):
        raise ValueError("expected a string of option names joined by '|'")
    parse_openssl_options(value)
    return value


def apply_openssl_options(context: ssl.SSLContext, text: str) -> None:
    """Replace ``context``'s named flags with those ``text`` sets (KumoMTA's clear-then-
    set); flags without a name keep their value."""
    flags = parse_openssl_options(text)
    with warnings.catch_warnings():
        # Python deprecates setting OP_NO_TLS* in favour of minimum/maximum_version,
        # which cannot say "everything but 1.2"; the operator asked for the flags.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.options = ssl.Options((context.options & ~_NAMED_BITS) | flags)
