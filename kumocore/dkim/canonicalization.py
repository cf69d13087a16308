"""Canonicalisation of a message for DKIM and ARC (RFC 6376 3.4, 5.4.2).

Splitting a CRLF message into its header block and body, the header fields as
``(lower-case name, raw field)`` pairs, the instances an ``h=`` list signs, and the
``simple``/``relaxed`` forms of header fields and of the body that the hashes are taken
over. :mod:`kumocore.dkim.signer` signs with them; ARC verifies and seals with them
(:mod:`kumocore.dkim.arc_crypto`, :mod:`kumocore.dkim.arc_seal`).
"""

from __future__ import annotations

import re

from kumocore.mail.sparse import SparsePattern

_WSP_RUN = re.compile(rb"[ \t]+")
_CRLF = b"\r\n"


def split_message(message: bytes) -> tuple[bytes, bytes]:
    """Header block (each field ending in CRLF) and body."""
    if message.startswith(_CRLF):
        return b"", message[2:]
    end = message.find(b"\r\n\r\n")
    if end < 0:
        return (message if message.endswith(_CRLF) else message + _CRLF), b""
    return message[: end + 2], message[end + 4 :]


def parse_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """``(lower-case name, raw field incl. folding and CRLF)`` for each header field."""
    fields: list[list[bytes]] = []
    for line in head.split(_CRLF)[:-1]:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
        else:
            fields.append([line])
    parsed: list[tuple[bytes, bytes]] = []
    for parts in fields:
        raw = _CRLF.join(parts) + _CRLF
        name, colon, _ = raw.partition(b":")
        if colon:  # a line without a colon is not a field and can never be signed
            parsed.append((name.rstrip(b" \t").lower(), raw))
    return parsed


def select_headers(
    fields: list[tuple[bytes, bytes]], wanted: tuple[str, ...], over_sign: bool
) -> tuple[list[str], list[bytes]]:
    """The ``h=`` names and the raw fields they sign, taking instances bottom-up (5.4.2).

    Without over-signing, listed headers absent from the message are left out of ``h=``.
    With it (KumoMTA's ``over_sign``), a name present N times is listed N+1 times: the
    extra entry signs "no further instance", so one cannot be added later.
    """
    instances: dict[bytes, list[bytes]] = {}
    for field_name, raw in fields:
        instances.setdefault(field_name, []).append(raw)
    names: list[str] = []
    signed: list[bytes] = []
    if over_sign:
        seen: set[str] = set()
        for name in wanted:
            lower = name.lower()
            if lower in seen:
                continue
            seen.add(lower)
            found = instances.get(lower.encode(), [])
            signed.extend(reversed(found))
            names.extend([name] * (len(found) + 1))
        return names, signed
    for name in wanted:
        remaining = instances.get(name.lower().encode())
        if remaining:
            signed.append(remaining.pop())
            names.append(name)
    if not names:  # an empty h= is invalid; a message without From cannot be signed
        raise ValueError("dkim: the message has none of the header fields to sign")
    return names, signed


def canonicalize_header(raw: bytes, relaxed: bool) -> bytes:
    if not relaxed:
        return raw
    name, _, value = raw.partition(b":")
    value = value.replace(_CRLF, b"")
    if b"\t" in value or b"  " in value:  # most fields have no run to squeeze: skip re
        value = _WSP_RUN.sub(b" ", value)
    value = value.strip(b" ")
    return name.rstrip(b" \t").lower() + b":" + value + _CRLF


def canonicalize_body(body: bytes, relaxed: bool) -> bytes:
    if relaxed:
        run, before_crlf = _spaces_to_relax(body)  # most bodies have neither
        if run:
            body = _WSP_RUN.sub(b" ", body)
        if before_crlf:
            body = body.replace(b" \r\n", _CRLF)
        if body.endswith(b" "):
            body = body[:-1]
    end = len(body)
    while body.endswith(_CRLF, 0, end):  # drop trailing empty lines (RFC 6376 3.4.3/3.4.4)
        end -= 2
    if end == 0:
        return b"" if relaxed else _CRLF
    if end == len(body) - 2:
        return body  # it ends in exactly one CRLF already: no copy
    return body[:end] + _CRLF


_SPACE_RUN = SparsePattern(b"  ", b" ")
_SPACE_BEFORE_CRLF = SparsePattern(b" \r\n", b" ")


def _spaces_to_relax(body: bytes) -> tuple[bool, bool]:
    """``(a tab or a run of spaces somewhere, a space before a CRLF somewhere)``.

    ``re``'s searches for both cost ~55 us per 100 KB; most of a large message is base64,
    which holds no space, so the searches go by way of ``memchr`` for spaces
    (:class:`~kumocore.mail.sparse.SparsePattern`)."""
    return (b"\t" in body or _SPACE_RUN.find(body) >= 0, _SPACE_BEFORE_CRLF.find(body) >= 0)
