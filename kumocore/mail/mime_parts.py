"""Making and remaking MIME parts as KumoMTA does: ``new_text``, ``new_binary``,
``new_multipart``, replacing a body, ``rebuild``, and the simplified structure.

The transfer encoding of a text part is KumoMTA's choice: none when quoted-printable
would not change the text, else quoted-printable, or base64 when that is no longer;
``charset`` is ``us-ascii`` or ``utf-8``. Binary content is always base64. Headers come in
KumoMTA's order (``Content-Disposition``, ``Content-ID``, ``Content-Type``,
``Content-Transfer-Encoding``), so ``tostring`` gives the bytes its tests show.
"""

from __future__ import annotations

import base64
import email.utils
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kumocore.mail import mime_header_values as hv
from kumocore.mail.mime_codec import b64_encode, qp_encode
from kumocore.mail.mime_headers import Header, HeaderMap
from kumocore.mail.mime_tree import MimeStructureError, Node

__all__ = [
    "AttachmentOptions",
    "Pointers",
    "attachment_options",
    "format_date",
    "new_binary",
    "new_multipart",
    "new_text",
    "rebuild",
    "replace_body",
    "structure_pointers",
]

_OPTION_FIELDS = ("file_name", "inline", "content_id")
#: Bytes quoted-printable may leave as they are (the line breaks, roughly).
_QP_PLAIN = bytes([0x09, 0x0A, 0x0D, *(b for b in range(0x20, 0x7F) if b != 0x3D)])


@dataclass(frozen=True)
class AttachmentOptions:
    file_name: str | None = None
    inline: bool = False
    content_id: str | None = None

    @classmethod
    def from_table(cls, table: Any) -> AttachmentOptions | None:
        if table is None:
            return None
        if not isinstance(table, Mapping):
            raise ValueError("attachment options must be a table")
        unknown = [k for k in table if k not in _OPTION_FIELDS]
        if unknown:
            raise ValueError(
                f"unknown field `{unknown[0]}`, expected one of "
                + ", ".join(f"`{f}`" for f in _OPTION_FIELDS)
            )
        name, cid = table.get("file_name"), table.get("content_id")
        return cls(
            None if name is None else _str(name),
            bool(table.get("inline", False)),
            None if cid is None else _str(cid),
        )


def _str(value: Any) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


def new_text(content_type: str, content: str | bytes) -> Node:
    data = _bytes(content)
    b64 = b64_encode(data)
    # Each byte quoted-printable must escape takes 3 characters: when that alone makes it
    # longer than base64, skip encoding it (it is the slow one, in Python).
    escaped = len(data.translate(None, _QP_PLAIN))
    if len(data) + 2 * escaped > len(b64):
        encoded, encoding = b64, "base64"
    else:
        encoded, encoding = qp_encode(data), "quoted-printable"
        if encoded == data:
            encoding = ""
        elif len(encoded) > len(b64):
            encoded, encoding = b64, "base64"
    if not encoded.endswith(b"\r\n"):
        encoded += b"\r\n"
    charset = "us-ascii" if data.isascii() else "utf-8"
    headers = [Header("Content-Type", hv.encode_mime_params(content_type, {"charset": charset}))]
    if encoding:
        headers.append(Header("Content-Transfer-Encoding", encoding))
    return Node(HeaderMap(headers), encoded)


def new_binary(
    content_type: str, content: str | bytes, options: AttachmentOptions | None = None
) -> Node:
    encoded = b64_encode(_bytes(content))
    if not encoded.endswith(b"\r\n"):
        encoded += b"\r\n"
    headers: list[Header] = []
    type_params: dict[str, str] = {}
    if options is not None:
        disposition = {} if options.file_name is None else {"filename": options.file_name}
        kind = "inline" if options.inline else "attachment"
        headers.append(Header("Content-Disposition", hv.encode_mime_params(kind, disposition)))
        if options.content_id is not None:
            headers.append(Header("Content-ID", f"<{options.content_id}>"))
        if options.file_name is not None:
            type_params["name"] = options.file_name
    encode_name = ("name",) if not type_params.get("name", "").isascii() else ()
    headers.append(
        Header("Content-Type", hv.encode_mime_params(content_type, type_params, encode_name))
    )
    headers.append(Header("Content-Transfer-Encoding", "base64"))
    return Node(HeaderMap(headers), encoded)


def new_multipart(content_type: str, parts: Sequence[Node], boundary: str | None = None) -> Node:
    if boundary is None:
        boundary = base64.b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
    params = hv.encode_mime_params(content_type, {"boundary": boundary})
    return Node(HeaderMap([Header("Content-Type", params)]), b"", [part.copy() for part in parts])


def replace_body(node: Node, content: str | bytes, content_type: str | None = None) -> None:
    """New content for ``node``, transfer-encoded afresh: text (a ``str``) as a text part,
    bytes as binary. Its other headers, ``Content-Disposition`` included, stay."""
    if content_type is None:
        current = node.content_type()
        content_type = None if current is None else current["value"]
    if isinstance(content, str):
        fresh = new_text(content_type or "text/plain", content)
    else:
        fresh = new_binary(content_type or "application/octet-stream", content)
    node.body, node.children = fresh.body, []
    node.headers.remove_all_named("Content-Type")
    node.headers.remove_all_named("Content-Transfer-Encoding")
    node.headers.headers.extend(fresh.headers.headers)


def attachment_options(node: Node) -> AttachmentOptions | None:
    """What the part's headers say of it as an attachment (None: nothing)."""
    disposition = node.headers.get_first_named("Content-Disposition")
    try:
        inline = disposition is not None and (disposition.mime_params["value"].lower() == "inline")
    except hv.HeaderValueError:
        inline = False
    file_name = node.param("Content-Disposition", "filename") or node.param("Content-Type", "name")
    cid_header = node.headers.get_first_named("Content-ID")
    try:
        content_id = None if cid_header is None else cid_header.message_id
    except hv.HeaderValueError:
        content_id = None
    if inline or file_name is not None or content_id is not None:
        return AttachmentOptions(file_name, inline, content_id)
    return None


@dataclass
class Pointers:
    """Where the primary parts are, as paths of child indexes from the walked part."""

    header_part: tuple[int, ...] = ()
    text_part: tuple[int, ...] | None = None
    html_part: tuple[int, ...] | None = None
    amp_html_part: tuple[int, ...] | None = None
    attachments: list[tuple[int, ...]] = field(default_factory=list)


_PRIMARY = {"text/plain": "text_part", "text/html": "html_part", "text/x-amp-html": "amp_html_part"}


def structure_pointers(node: Node, here: tuple[int, ...] = ()) -> Pointers:
    """KumoMTA's simplified structure: the first inline text/plain, text/html and
    text/x-amp-html leaves are the primary parts, every other leaf an attachment."""
    ctype = node.content_type()
    if ctype is None:
        return Pointers(here, text_part=here)  # no Content-Type: text/plain
    options = attachment_options(node)
    value = ctype["value"].lower()
    if (options is None or options.inline) and value in _PRIMARY:
        found = Pointers(here)
        setattr(found, _PRIMARY[value], here)
        return found
    if not value.startswith("multipart/"):
        return Pointers(here, attachments=[here])
    found = Pointers(here)
    for index, child in enumerate(node.children):
        inner = structure_pointers(child, (*here, index))
        for slot in ("text_part", "html_part", "amp_html_part"):
            pointer = getattr(inner, slot)
            if pointer is None:
                continue
            if getattr(found, slot) is None:
                setattr(found, slot, pointer)
            else:
                found.attachments.append(pointer)
        found.attachments.extend(inner.attachments)
    return found


def format_date(when: datetime) -> str:
    """RFC 2822 date as KumoMTA writes it: ``Tue, 1 Jul 2003 10:52:37 +0200``."""
    return when.strftime("%a, ") + str(when.day) + when.strftime(" %b %Y %H:%M:%S %z")


_REBUILT_PARAMS = ("content-type", "content-transfer-encoding", "content-disposition")


def rebuild(node: Node) -> Node:
    """A fresh part from what ``node`` means: bodies re-encoded, headers re-written from
    their parsed form; headers that cannot be parsed are dropped."""
    ctype = node.content_type()
    if node.children:
        if ctype is None:
            raise MimeStructureError("multipart message has no content-type information!?")
        boundary = node.param("Content-Type", "boundary")
        fresh = new_multipart(ctype["value"], [rebuild(c) for c in node.children], boundary)
    else:
        body = node.decoded_body()
        if isinstance(body, str):
            fresh = new_text(ctype["value"] if ctype else "text/plain", body)
        else:
            fresh = new_binary(
                ctype["value"] if ctype else "application/octet-stream",
                body,
                attachment_options(node),
            )
    for header in node.headers.headers:
        lower = header.name.lower()
        if lower == "content-id":
            continue
        if lower in _REBUILT_PARAMS:
            _merge_params(fresh, header)
            continue
        rebuilt = _rebuild_header(header)
        if rebuilt is not None:
            fresh.headers.headers.append(rebuilt)
    return fresh


def _merge_params(fresh: Node, header: Header) -> None:
    """Parameters of the original header that the fresh one lacks are added to it."""
    target = fresh.headers.get_first_named(header.name)
    try:
        if target is None:
            return
        mine, theirs = target.mime_params, header.mime_params
    except hv.HeaderValueError:
        return
    params = dict(mine["parameters"])
    lowered = {k.lower() for k in params}
    params.update({k: v for k, v in theirs["parameters"].items() if k.lower() not in lowered})
    index = fresh.headers.headers.index(target)
    fresh.headers.headers[index] = Header(target.name, hv.encode_mime_params(mine["value"], params))


def _rebuild_header(header: Header) -> Header | None:
    lower = header.name.lower()
    try:
        if lower in (
            "from",
            "resent-from",
            "reply-to",
            "to",
            "cc",
            "bcc",
            "resent-to",
            "resent-cc",
            "resent-bcc",
        ):
            return Header(header.name, hv.encode_address_list(header.address_list))
        if lower in ("sender", "resent-sender"):
            return Header(header.name, hv.encode_mailbox(header.mailbox))
        if lower == "message-id":
            return Header(header.name, f"<{header.message_id}>")
        if lower == "references":
            return Header(header.name, hv.encode_message_ids(header.message_id_list))
        if lower == "date":
            return Header(
                header.name, format_date(email.utils.parsedate_to_datetime(header.unstructured))
            )
    except (hv.HeaderValueError, ValueError, TypeError):
        return None
    return Header.unstructured_text(header.name, header.unstructured)
