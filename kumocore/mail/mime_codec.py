"""Transfer encodings for ``kumo.mimepart``: bodies (quoted-printable, base64) and header
text (RFC 2047 encoded words, line wrapping), producing the same bytes as KumoMTA.

KumoMTA's choices, which policies see in ``tostring(part)`` and tests assert on:
quoted-printable lines are cut at 76 columns with a soft break (``=`` CRLF), CRLF pairs
pass through as line breaks, a lone CR or LF is encoded (``=0D``, ``=0A``), as is a space
or tab ending a line; base64 lines are 76 characters, each ending in CRLF. An encoded
header word is ``=?UTF-8?q?...?=`` with ``_`` for a space and at most 60 encoded characters
a word; plain ASCII header text is wrapped at whitespace before column 75 and cut
regardless of whitespace at 900 characters.
"""

from __future__ import annotations

import binascii
import re

__all__ = ["b64_decode", "b64_encode", "header_qp_encode", "qp_decode", "qp_encode", "wrap_header"]

_QP_LIMIT = 76
_B64_LINE = 76
_SOFT_WIDTH = 75
_HARD_WIDTH = 900
_WORD_PREFIX = "=?UTF-8?q?"
_WORD_ROOM = 72 - len(_WORD_PREFIX) - 2  # 2: the "?=" that closes a word
_HEADER_PLAIN = frozenset(
    c for c in map(chr, range(0x21, 0x7F)) if c not in "?="
)  # '_' is plain, as in KumoMTA


class _QpWriter:
    """Quoted-printable output with the soft-break bookkeeping of a 76-column limit.
    ``out`` holds one token per element, so the last token is always ``out[-1]``."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.on_line = 0

    def add(self, token: str) -> None:
        if self.on_line + len(token) > _QP_LIMIT:
            if self.on_line == _QP_LIMIT:
                # No room for the '=' itself: break before the previous token instead.
                self.out.insert(len(self.out) - 1, "=\r\n")
                self.on_line = len(self.out[-1])
            else:
                self.out.append("=\r\n")
                self.on_line = 0
        self.out.append(token)
        self.on_line += len(token)

    def encode_trailing_blank(self) -> None:
        # A space or tab may not end an encoded line (RFC 2045 6.7 rule 3).
        if self.out and self.out[-1] in (" ", "\t"):
            blank = self.out.pop()
            self.on_line -= 1
            self.add("=20" if blank == " " else "=09")

    def line_break(self) -> None:
        self.encode_trailing_blank()
        self.out.append("\r\n")
        self.on_line = 0


def qp_encode(data: bytes) -> bytes:
    """``data`` quoted-printable encoded as text (CRLF pairs stay line breaks)."""
    lines = []
    for line in data.split(b"\r\n"):
        # Most lines of text need nothing: skip the byte-by-byte writer for them (it
        # costs ~0.2 s a MB of loop time, a 30 MB text part seconds).
        plain = len(line) <= _QP_LIMIT and not line.translate(None, _QP_UNCHANGED)
        if plain and not line.endswith((b" ", b"\t")):
            lines.append(line.decode("ascii"))
        else:
            lines.append(_qp_line(line))
    return "\r\n".join(lines).encode("ascii")


def _qp_line(line: bytes) -> str:
    """One line (no CRLF in it) quoted-printable encoded, soft breaks included."""
    writer = _QpWriter()
    for byte in line:
        if byte == 0x3D:
            writer.add("=3D")
        elif byte == 0x09 or 0x20 <= byte <= 0x7E:
            writer.add(chr(byte))
        else:
            writer.add(f"={byte:02X}")  # a lone CR or LF too
    writer.encode_trailing_blank()
    return "".join(writer.out)


#: The bytes a line may hold and come out of quoted-printable unchanged.
_QP_UNCHANGED = bytes([0x09, *(b for b in range(0x20, 0x7F) if b != 0x3D)])
#: Bytes a decode drops: all but tab, the line breaks and printable ASCII (``translate``:
#: a generator over the bytes took 65 ms a MB of the loop's time).
_QP_DROPPED = bytes(b for b in range(256) if not (b in (0x09, 0x0A, 0x0D) or 0x20 <= b <= 0x7E))
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


def qp_decode(data: bytes) -> bytes:
    """A lenient quoted-printable decode: bytes outside printable ASCII are dropped,
    trailing blanks of each line ignored, line breaks come out as CRLF."""
    kept = data.translate(None, _QP_DROPPED)
    lines = kept.split(b"\n")
    ends_with_newline = kept.endswith(b"\n")
    if ends_with_newline:
        lines.pop()
    out: list[bytes] = []
    pending_break = False
    for line in lines:
        if pending_break:
            out.append(b"\r\n")
        line = line.rstrip(b"\r").rstrip(b" \t")
        soft = (line.endswith(b"=") and not line.endswith(b"==")) or line == b"="
        text = line[:-1] if soft else line
        out.append(_QP_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), text))
        pending_break = not soft
    if ends_with_newline:
        out.append(b"\r\n")
    return b"".join(out)


def b64_encode(data: bytes) -> bytes:
    """Base64 in lines of 76 characters, each ending in CRLF."""
    text = binascii.b2a_base64(data, newline=False)
    return b"".join(text[i : i + _B64_LINE] + b"\r\n" for i in range(0, len(text), _B64_LINE))


def b64_decode(data: bytes) -> bytes:
    """Base64 ignoring whitespace and stray characters; a missing final pad is tolerated."""
    text = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    text = text[: len(text) - len(text) % 4] if len(text) % 4 == 1 else text
    return binascii.a2b_base64(text + b"=" * (-len(text) % 4))


def header_qp_encode(text: str) -> str:
    """``text`` as RFC 2047 ``Q`` encoded words, folded between words when one is full."""
    out = [_WORD_PREFIX]
    used = 0
    for char in text:
        if char in _HEADER_PLAIN:
            token = char
        elif char == " ":
            token = "_"
        else:
            token = "".join(f"={b:02X}" for b in char.encode("utf-8", "surrogateescape"))
        if len(token) > _WORD_ROOM - used:
            out.append("?=\r\n\t" + _WORD_PREFIX)
            used = 0
        out.append(token)
        used += len(token)
    if used:
        out.append("?=")
    return "".join(out)


def wrap_header(value: str) -> str:
    """ASCII header text re-folded: words joined by single spaces into lines shorter than
    75 columns; a word longer than 900 characters is cut there."""
    lines: list[str] = []
    line = ""
    for word in value.split():
        if len(line) + len(word) < _SOFT_WIDTH:
            line = f"{line} {word}" if line else word
            continue
        if line:
            lines.append(line)
            line = ""
        while len(word) > _HARD_WIDTH:
            lines.append(word[:_HARD_WIDTH])
            word = word[_HARD_WIDTH:]
        line = word
    if line:
        lines.append(line)
    return "\r\n\t".join(lines)
