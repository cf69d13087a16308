"""``msg:append_text_plain(text)`` and ``msg:append_text_html(html)``: add text to the
message's primary ``text/plain`` or ``text/html`` part.

The primary part is the first leaf of that type that is neither an attachment nor named
(what ``part:get_simple_structure()`` calls ``text_part``/``html_part``). Its body is
transfer-decoded and charset-decoded, then ``CRLF`` + the text is appended — for HTML
inserted ahead of the last ``</body>`` (else ``</BODY>``) when there is one. The part is
re-encoded as KumoMTA does: left as is when the text needs no encoding, else
quoted-printable, or base64 when that is shorter; ``charset`` becomes ``us-ascii`` or
``utf-8``. Its old ``Content-Type`` and ``Content-Transfer-Encoding`` are dropped and the
new ones added after its other headers. Only that part's bytes change: every other part,
header and boundary stays byte for byte. The result is True when a part was found.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
from email import policy as email_policy
from email.message import Message as EmailMessage
from email.parser import BytesHeaderParser

from kumocore.mail.headers import HeaderBlock, remove_fields, split_header_block

__all__ = ["TextAppendError", "append_text"]

#: Multipart nesting deeper than this is not searched (see mime_view.MAX_DEPTH).
_MAX_DEPTH = 64


class TextAppendError(ValueError):
    """The primary text part cannot be decoded as text."""


def _headers(head: bytes) -> EmailMessage:
    return BytesHeaderParser(policy=email_policy.compat32).parsebytes(head + b"\r\n")


def _is_primary(headers: EmailMessage, content_type: str) -> bool:
    return (headers.get_content_type() == content_type
            and headers.get_content_disposition() is None
            and headers.get_filename() is None)


def _find(data: bytes, start: int, end: int, content_type: str,
          depth: int = 0) -> tuple[int, int, int, EmailMessage] | None:
    """``(part start, body start, part end, headers)`` of the primary part, or None."""
    header_end, body = split_header_block(data[start:end])
    headers = _headers(data[start : start + header_end])
    body += start
    if headers.get_content_maintype() != "multipart":
        return (start, body, end, headers) if _is_primary(headers, content_type) else None
    boundary = headers.get_param("boundary")
    if not isinstance(boundary, str) or not boundary or depth >= _MAX_DEPTH:
        return None
    # A delimiter starts a line; the line break before it stays with the part before.
    delimiter = re.compile(rb"(?:^|(?<=\n))--" + re.escape(boundary.encode("utf-8", "replace"))
                           + rb"(--)?[ \t]*(?:\r?\n|$)")
    text = data[body:end]
    marks = list(delimiter.finditer(text))
    for this, after in itertools.pairwise(marks):
        if this.group(1):  # the close delimiter: what follows is the epilogue
            break
        found = _find(data, body + this.end(), body + after.start(), content_type, depth + 1)
        if found is not None:
            return found
    return None


def _decode(body: bytes, headers: EmailMessage) -> str:
    cte = str(headers.get("Content-Transfer-Encoding", "")).strip().lower()
    try:
        if cte == "base64":
            raw = base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", body) + b"==")
        elif cte == "quoted-printable":
            raw = binascii.a2b_qp(body)
        else:
            raw = body
    except (binascii.Error, ValueError) as exc:
        raise TextAppendError(f"cannot decode the {cte} text part: {exc}") from None
    charset = headers.get_content_charset() or "us-ascii"
    try:
        return raw.decode("utf-8" if charset in ("us-ascii", "ascii") else charset)
    except (LookupError, UnicodeDecodeError):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise TextAppendError(
                f"expected {headers.get_content_type()} part to be text, but it is binary "
                f"(charset {charset!r})") from None


def _encode(text: str) -> tuple[bytes, str | None]:
    """The body bytes and the transfer encoding they need (None: as is)."""
    raw = text.encode("utf-8")
    qp = binascii.b2a_qp(raw.replace(b"\r\n", b"\n"), istext=True).replace(b"\n", b"\r\n")
    if qp == raw:
        body, cte = raw, None
    else:
        b64 = base64.encodebytes(raw).replace(b"\n", b"\r\n")
        body, cte = (qp, "quoted-printable") if len(qp) <= len(b64) else (b64, "base64")
    return (body if body.endswith(b"\r\n") else body + b"\r\n"), cte


def append_text(data: bytes, content_type: str, content: str) -> bytes | None:
    """``data`` with ``content`` added to its primary ``content_type`` part, or None
    when it has none (``content_type`` is ``text/plain`` or ``text/html``)."""
    found = _find(data, 0, len(data), content_type)
    if found is None:
        return None
    start, body_start, end, headers = found
    text = _decode(data[body_start:end], headers)
    addition = "\r\n" + content
    cut = -1
    if content_type == "text/html":
        cut = text.rfind("</body>")
        cut = text.rfind("</BODY>") if cut < 0 else cut
    text = text + addition if cut < 0 else text[:cut] + addition + text[cut:]
    body, cte = _encode(text)
    charset = "us-ascii" if text.isascii() else "utf-8"
    nl = b"\n" if b"\r\n" not in data[start:body_start] and b"\n" in data[start:body_start] \
        else b"\r\n"
    head = data[start:body_start]
    block = HeaderBlock(head)
    head = remove_fields(head[: block.end], block.get_all("Content-Type")
                         + block.get_all("Content-Transfer-Encoding"))
    if head and not head.endswith(b"\n"):
        head += nl
    head += f"Content-Type: {content_type};{nl.decode()}\tcharset=\"{charset}\"".encode() + nl
    if cte is not None:
        head += f"Content-Transfer-Encoding: {cte}".encode() + nl
    if nl != b"\r\n":
        body = body.replace(b"\r\n", nl)
    return data[:start] + head + nl + body + data[end:]
