"""The header block of raw RFC 5322 message bytes: lazy parsing and cheap edits.

Only the header block is ever looked at: it ends at the first empty line (CRLF CRLF; a
bare-LF message is tolerated so that locally generated mail works too). The body is never
parsed or copied more than once per edit. Editing functions take and return the whole
message bytes; they never re-serialise the headers they do not touch, so a DKIM
signature made before an edit stays valid for the headers it covered.

Values are returned unfolded, RFC 2047 decoded, each white-space run one space (as KumoMTA
reads an unstructured header). Raw 8-bit header bytes are read as
UTF-8 (RFC 6532), falling back to Latin-1 so that a broken legacy header never raises.
Encoded words themselves, read and written, are :mod:`kumocore.mail.rfc2047`.
"""

from __future__ import annotations

import re

from kumocore.mail.rfc2047 import decode_rfc2047, encode_header_value

__all__ = [
    "HeaderBlock",
    "HeaderError",
    "HeaderField",
    "HeaderParseError",
    "append_header",
    "format_header",
    "header_line_for",
    "newline_of",
    "prepend_header",
    "remove_fields",
    "remove_headers",
    "split_header_block",
]

_FIELD = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")
_LINE_BREAKS = re.compile(r"[ \t]*[\r\n]+[ \t]*")
_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")
#: A value already folded (RFC 5322 2.2.3): every break is CRLF and starts a continuation
#: line that holds more than white space.
_FOLDED = re.compile(r"[^\r\n]*(?:\r\n[ \t]+[^\r\n \t][^\r\n]*)+")
#: A run of folding white space left by unfolding: read as one space.
_WSP_RUN = re.compile(r"[ \t]{2,}|\t")


class HeaderError(ValueError):
    """The header block is malformed, or a header to add is not acceptable."""


class HeaderParseError(HeaderError):
    """The message's own header block is malformed (the sender's fault, not the policy's)."""


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


class HeaderField:
    """One header field: its name as written, its unfolded raw value, and its byte span."""

    __slots__ = ("end", "name", "raw_value", "start")

    def __init__(self, name: str, raw_value: str, start: int, end: int) -> None:
        self.name = name
        self.raw_value = raw_value  # unfolded, still RFC 2047 encoded
        self.start = start  # offset of the first byte of the field in the message
        self.end = end  # offset just past its last line terminator

    @property
    def value(self) -> str:
        """The value as policies read it (``msg:get_first_named_header_value``): RFC 2047
        words decoded and every run of folding white space (spaces, tabs, a fold) one
        space, as KumoMTA reads an unstructured header."""
        raw = self.raw_value
        if "\t" in raw or "  " in raw:
            raw = _WSP_RUN.sub(" ", raw)
        return decode_rfc2047(raw)


def split_header_block(data: bytes) -> tuple[int, int]:
    """``(header_end, body_start)``: where the header block ends and the body begins.

    ``header_end`` is just past the last header line's terminator (where an appended
    header goes). Without an empty line the whole message is headers.
    """
    if data.startswith(b"\r\n"):
        return 0, 2
    if data.startswith(b"\n"):
        return 0, 1
    crlf = data.find(b"\r\n\r\n")
    limit = crlf + 3 if crlf >= 0 else len(data)
    lf = data.find(b"\n\n", 0, limit)  # a bare-LF separator earlier than any CRLF one
    if lf >= 0:
        return lf + 1, lf + 2
    if crlf >= 0:
        return crlf + 2, crlf + 4
    return len(data), len(data)


class HeaderBlock:
    """The parsed header block of one message: fields in order, case-insensitive index."""

    __slots__ = ("_index", "body_start", "end", "fields")

    def __init__(self, data: bytes) -> None:
        self.end, self.body_start = split_header_block(data)
        self.fields: list[HeaderField] = []
        self._index: dict[str, list[HeaderField]] = {}
        self._parse(data)

    def _parse(self, data: bytes) -> None:
        pos, lineno, end = 0, 0, self.end
        name: str | None = None
        start = 0
        parts: list[bytes] = []
        while pos < end:
            nl = data.find(b"\n", pos, end)
            line_end = end if nl < 0 else nl + 1
            line = data[pos:line_end].rstrip(b"\r\n")
            lineno += 1
            if line[:1] in (b" ", b"\t"):
                if name is None:
                    raise HeaderParseError(f"header line {lineno} is a continuation of nothing")
                parts.append(line)
            else:
                m = _FIELD.match(line)
                if m is None:
                    raise HeaderParseError(f"malformed header line {lineno}: {line[:60]!r}")
                if name is not None:
                    self._add(name, parts, start, pos)
                name, start, parts = m.group(1).decode("ascii"), pos, [line[m.end() :]]
            pos = line_end
        if name is not None:
            self._add(name, parts, start, end)

    def _add(self, name: str, parts: list[bytes], start: int, end: int) -> None:
        # RFC 5322 unfolding removes only the line breaks; the folding whitespace stays.
        field = HeaderField(name, _text(b"".join(parts)).strip(" \t"), start, end)
        self.fields.append(field)
        self._index.setdefault(name.lower(), []).append(field)

    def get_all(self, name: str) -> list[HeaderField]:
        return list(self._index.get(name.lower(), ()))

    def get_first(self, name: str) -> HeaderField | None:
        found = self._index.get(name.lower())
        return found[0] if found else None


# --------------------------------------------------------------------- building headers


def format_header(name: str, value: str, *, encode: bool = False, nl: bytes = b"\r\n") -> bytes:
    """``Name: value`` plus ``nl``, refusing names and values that would break the block
    (a value may be folded already: CRLF, then white space and more text)."""
    if not _NAME.fullmatch(name):
        raise HeaderError(f"invalid header name {name!r}")
    if encode:
        value = encode_header_value(name, _LINE_BREAKS.sub(" ", value))
    elif ("\r" in value or "\n" in value) and not _FOLDED.fullmatch(value):
        raise HeaderError(
            f"header {name!r} value contains a line break that is not a fold"
            " (CRLF then white space and text); pass encode=True")
    text = f"{name}: {value}"
    if nl != b"\r\n":
        text = text.replace("\r\n", nl.decode("ascii"))
    return text.encode("utf-8") + nl


def _newline_of(data: bytes) -> bytes:
    nl = data.find(b"\n")
    return b"\n" if nl > 0 and data[nl - 1 : nl] != b"\r" else b"\r\n"


def newline_of(data: bytes) -> bytes:
    """How ``data``'s lines end: ``b"\\n"`` when its first line ends in a bare LF, else CRLF
    (what new header lines for ``data`` should use)."""
    return _newline_of(data)


def prepend_header(data: bytes, name: str, value: str, *, encode: bool = False) -> bytes:
    """The message with ``Name: value`` added as the first header."""
    return header_line_for(data, name, value, encode=encode) + data


def header_line_for(data: bytes, name: str, value: str, *, encode: bool = False) -> bytes:
    """The ``Name: value`` line that :func:`prepend_header` puts in front of ``data``
    (ended the way ``data``'s lines are)."""
    return format_header(name, value, encode=encode, nl=_newline_of(data))


def append_header(data: bytes, name: str, value: str, *, encode: bool = False) -> bytes:
    """The message with ``Name: value`` added after the last header."""
    newline = _newline_of(data)
    line = format_header(name, value, encode=encode, nl=newline)
    end, _ = split_header_block(data)
    if end and data[end - 1 : end] != b"\n":
        line = newline + line  # headers-only message without a final line break
    return data[:end] + line + data[end:]


def remove_headers(data: bytes, name: str, block: HeaderBlock | None = None) -> bytes:
    """The message without any ``name`` header (the same object when there was none)."""
    return remove_fields(data, (block or HeaderBlock(data)).get_all(name))


def remove_fields(data: bytes, fields: list[HeaderField]) -> bytes:
    """The message without these fields (parsed from this very ``data``)."""
    if not fields:
        return data
    pieces: list[bytes] = []
    pos = 0
    for f in sorted(fields, key=lambda f: f.start):
        if f.start >= pos:  # the same field listed twice is cut once
            pieces.append(data[pos : f.start])
            pos = f.end
    pieces.append(data[pos:])
    return b"".join(pieces)
