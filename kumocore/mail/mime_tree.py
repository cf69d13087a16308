"""A message's MIME tree as data: parsing it (bounded), writing it back, decoding a body.

A :class:`Node` is one part: its :class:`HeaderMap`, its transfer-encoded body (a leaf) or
its children (a multipart), and a multipart's preamble and epilogue. Parsing keeps every
byte it does not interpret, so an unchanged tree is written back exactly as it came, as
KumoMTA's is: a part ends with the line break before the next boundary, the boundary
lines are rewritten from the ``boundary`` parameter, a message with bare-LF line endings
is written back with bare LFs.

Hostile input is bounded: parts nested deeper than :data:`MAX_DEPTH`, more than
:data:`MAX_PARTS` parts or :data:`MAX_HEADERS` header fields in one message, or a header
field longer than :data:`MAX_HEADER_BYTES`, are refused with a
:class:`MimeStructureError`. Parsing is one pass over the bytes (boundaries are found with
``bytes.find`` from where the last one ended), so time and memory stay linear in the size
of the message for whatever shape it has.
"""

from __future__ import annotations

import codecs

from kumocore.mail import mime_header_values as hv
from kumocore.mail.mime_codec import b64_decode, qp_decode
from kumocore.mail.mime_headers import Header, HeaderMap

__all__ = [
    "MAX_DEPTH",
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "MAX_PARTS",
    "MimeStructureError",
    "Node",
    "parse",
]

#: Deeper MIME nesting than this is refused: real mail nests a handful of levels, and a
#: crafted message nesting thousands would exhaust the stack of any recursive walk.
MAX_DEPTH = 64
#: More parts than this in one message are refused (each costs a few hundred bytes of
#: objects: a crafted message of empty parts would otherwise multiply its size in memory).
MAX_PARTS = 10_000
#: Likewise for header fields, summed over all the parts of a message.
MAX_HEADERS = 50_000
#: One header field longer than this (folded lines included) is refused: reading a
#: structured value (an address list) costs some microseconds a byte, so an unbounded
#: field would let one message hold a policy for minutes.
MAX_HEADER_BYTES = 256 * 1024


class MimeStructureError(ValueError):
    """The message's MIME structure cannot be handled (nested too deeply, too many parts)."""


class Node:
    """One MIME part. ``body`` is the transfer-encoded body of a leaf."""

    __slots__ = ("body", "children", "headers", "intro", "nl", "outro")

    def __init__(
        self,
        headers: HeaderMap,
        body: bytes = b"",
        children: list[Node] | None = None,
        nl: bytes = b"\r\n",
    ) -> None:
        self.headers = headers
        self.body = body
        self.children: list[Node] = children or []
        self.intro = b""  # a multipart's preamble, up to its first boundary
        self.outro = b""  # and its epilogue, after the closing boundary
        self.nl = nl

    def copy(self) -> Node:
        # Header objects are never changed in place (a setter replaces them): share them.
        node = Node(
            HeaderMap(list(self.headers.headers)),
            self.body,
            [child.copy() for child in self.children],
            self.nl,
        )
        node.intro, node.outro = self.intro, self.outro
        return node

    def content_type(self) -> hv.MimeParams | None:
        """The parsed ``Content-Type``, or None when absent or unreadable."""
        header = self.headers.get_first_named("Content-Type")
        try:
            return None if header is None else header.mime_params
        except hv.HeaderValueError:
            return None

    def param(self, header_name: str, name: str) -> str | None:
        header = self.headers.get_first_named(header_name)
        try:
            params = {} if header is None else header.mime_params["parameters"]
        except hv.HeaderValueError:
            return None
        wanted = name.lower()
        return next((v for k, v in params.items() if k.lower() == wanted), None)

    def write(self, out: list[bytes]) -> None:
        out.append(self.headers.to_bytes())
        out.append(self.nl)
        if not self.children:
            out.append(self.body)
            return
        boundary = self.param("Content-Type", "boundary")
        if boundary is None:
            raise MimeStructureError("expected Content-Type to have a boundary")
        delimiter = b"--" + boundary.encode("utf-8", "surrogateescape")
        out.append(self.intro)
        for child in self.children:
            out.append(delimiter + self.nl)
            child.write(out)
        out.append(delimiter + b"--" + self.nl)
        out.append(self.outro)

    def to_bytes(self) -> bytes:
        out: list[bytes] = []
        self.write(out)
        return b"".join(out)

    def decoded_body(self) -> str | bytes:
        """The body, transfer-decoded; text parts (and parts without a Content-Type) as
        text when their charset (else UTF-8) decodes them, anything else as bytes."""
        if self.children:
            return ""
        cte = self.headers.get_first_named("Content-Transfer-Encoding")
        encoding = cte.unstructured.strip().lower() if cte is not None else ""
        data = self.body
        if encoding == "base64":
            data = b64_decode(data)
        elif encoding == "quoted-printable":
            data = qp_decode(data)
        ctype = self.content_type()
        if ctype is not None and not ctype["value"].lower().startswith("text/"):
            return data
        charset = self.param("Content-Type", "charset") or "us-ascii"
        for candidate in (charset, "utf-8"):
            try:
                return data.decode(codecs.lookup(candidate).name)
            except (LookupError, UnicodeDecodeError):
                continue
        return data


class _Parser:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.parts = 0
        self.fields = 0

    def headers(self, start: int, end: int) -> tuple[list[Header], int, bytes]:
        """The part's headers, where its body starts, and the line ending of the blank
        line between them (the part's boundaries are written with that one too)."""
        data, pos = self.data, start
        found: list[Header] = []
        while pos < end:
            if data.startswith(b"\n", pos):
                return found, pos + 1, b"\n"
            if data.startswith(b"\r\n", pos):
                return found, pos + 2, b"\r\n"
            if not found and data[pos] in b" \t":
                raise MimeStructureError("header block must not start with spaces")
            stop = data.find(b"\n", pos, end)
            while stop != -1 and stop + 1 < end and data[stop + 1] in b" \t":
                stop = data.find(b"\n", stop + 1, end)
            line_end = end if stop == -1 else stop
            if line_end - pos > MAX_HEADER_BYTES:
                raise MimeStructureError(f"a header field longer than {MAX_HEADER_BYTES} bytes")
            found.append(self._header(data[pos:line_end], stop != -1))
            self.fields += 1
            if self.fields > MAX_HEADERS:
                raise MimeStructureError(f"more than {MAX_HEADERS} header fields")
            pos = line_end + 1
        return found, end, b"\n" if found and found[-1].nl == "\n" else b"\r\n"

    def _header(self, raw: bytes, terminated: bool) -> Header:
        nl = "\r\n" if raw.endswith(b"\r") or not terminated else "\n"
        text = raw.removesuffix(b"\r").decode("utf-8", "surrogateescape")
        colon = text.find(":")
        first_line = text.split("\n", 1)[0]
        if colon < 0 or colon > len(first_line):
            return Header(text, "", "", nl)  # no colon: kept as written
        name = text[:colon].rstrip(" \t")
        value_at = colon + 1
        while text.startswith(" ", value_at):
            value_at += 1
        return Header(name, text[value_at:], text[len(name) : value_at], nl)

    def parse(self, start: int, end: int, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise MimeStructureError(f"MIME parts nested deeper than {MAX_DEPTH} levels")
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise MimeStructureError(f"more than {MAX_PARTS} MIME parts")
        headers, body_at, nl = self.headers(start, end)
        node = Node(HeaderMap(headers), nl=nl)
        ctype = node.content_type()
        boundary = node.param("Content-Type", "boundary")
        multipart = ctype is not None and ctype["value"].lower().startswith(
            ("multipart/", "message/")
        )
        if not (multipart and boundary):
            node.body = self.data[body_at:end]
            return node
        self._children(node, boundary.encode("utf-8", "surrogateescape"), body_at, end, depth)
        return node

    def _children(self, node: Node, boundary: bytes, body_at: int, end: int, depth: int) -> None:
        data, delimiter = self.data, b"\n--" + boundary
        # The line break ending the header block may be the one that starts the delimiter.
        found = data.find(delimiter, max(body_at - 1, 0), end)
        if found == -1:
            node.body = data[body_at:end]
            return
        node.intro = data[body_at : found + 1]
        after = found + len(delimiter)
        while (line_end := data.find(b"\n", after, end)) != -1:
            part_start = line_end + 1
            found = data.find(delimiter, after, end)
            part_end = end if found == -1 else found + 1
            node.children.append(self.parse(min(part_start, part_end), part_end, depth + 1))
            if found == -1:
                return
            after = found + len(delimiter)
            if data.startswith(b"--", after):
                close_end = data.find(b"\n", after, end)
                node.outro = b"" if close_end == -1 else data[close_end + 1 : end]
                return


def parse(data: bytes) -> Node:
    """The MIME tree of ``data`` (lenient: broken structure is still readable)."""
    return _Parser(data).parse(0, len(data), 0)
