"""``msg:parse_mime()``: a read-only view of a message's MIME tree for inspection.

Shapes follow KumoMTA's MimePart/HeaderMap/Header objects as far as reading goes:
``part.headers`` (``headers:subject()``, ``headers:get_first_named(name)``,
``for hdr in headers:iter(name)``), ``part.body`` (transfer-decoded: text as a string,
anything else as bytes), ``part.id`` (position in the tree, ``'0'``, ``'0.1'``...),
``part:get_simple_structure()`` (``text_part``, ``html_part``, ``header_part``,
``attachments``) and ``tostring(part)`` (the part as RFC 5322 text). Changing the tree
(assigning ``body``, ``replace_body``, ``append_part``, ``rebuild``) is not supported yet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from email import policy as email_policy
from email.message import Message as EmailMessage
from email.parser import BytesParser
from typing import Any


@dataclass(frozen=True)
class Header:
    """One header: ``hdr.name``, ``hdr.value`` (unfolded, decoded), ``hdr.raw_value``."""

    name: str
    value: str
    raw_value: str


class HeaderMap:
    """The headers of one MIME part, in order."""

    __kumo_methods__ = True

    def __init__(self, part: EmailMessage) -> None:
        self._headers = [
            Header(name, str(part.policy.header_fetch_parse(name, raw)), str(raw))
            for name, raw in part.raw_items()
        ]

    def get_first_named(self, name: str) -> Header | None:
        wanted = str(name).lower()
        return next((h for h in self._headers if h.name.lower() == wanted), None)

    def iter(self, name: str | None = None) -> Callable[..., Header | None]:
        """A Lua-style iterator function (``for hdr in headers:iter() do``)."""
        wanted = None if name is None else str(name).lower()
        items = iter([h for h in self._headers if wanted is None or h.name.lower() == wanted])

        def step(*_state: Any) -> Header | None:
            return next(items, None)

        return step

    def subject(self) -> str | None:
        header = self.get_first_named("Subject")
        return None if header is None else header.value

    def __len__(self) -> int:
        return len(self._headers)


#: Deeper MIME nesting than this is refused: real mail nests a handful of levels, and a
#: crafted message nesting thousands would exhaust the stack of any recursive walk.
MAX_DEPTH = 64


class MimeStructureError(ValueError):
    """The message's MIME structure cannot be inspected (e.g. nested too deeply)."""


class MimePart:
    """One part of the tree (the message itself is part ``'0'``)."""

    __kumo_fields__ = True  # Lua reads part.body/part.headers and calls part:method()

    def __init__(self, part: EmailMessage, part_id: str = "0", depth: int = 0) -> None:
        if depth > MAX_DEPTH:
            raise MimeStructureError(f"MIME parts nested deeper than {MAX_DEPTH} levels")
        self._part = part
        self.id = part_id
        self.headers = HeaderMap(part)
        self.content_type = part.get_content_type()
        self.children = [
            MimePart(child, f"{part_id}.{index}", depth + 1)
            for index, child in enumerate(part.get_payload() if part.is_multipart() else [])
            if isinstance(child, EmailMessage)
        ]

    @property
    def body(self) -> str | bytes:
        if self._part.is_multipart():
            return ""
        payload = self._part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if self._part.get_content_maintype() != "text":
            return data
        charset = self._part.get_content_charset() or "utf-8"
        try:
            return data.decode(charset, "replace")
        except LookupError:
            return data.decode("utf-8", "replace")

    def walk(self) -> list[MimePart]:
        return [self, *(part for child in self.children for part in child.walk())]

    def get_simple_structure(self) -> dict[str, Any]:
        text = html = None
        attachments = []
        for part in self.walk():
            if part.children:
                continue
            disposition = part._part.get_content_disposition()
            file_name = part._part.get_filename()
            if disposition is None and file_name is None:
                if part.content_type == "text/plain" and text is None:
                    text = part
                    continue
                if part.content_type == "text/html" and html is None:
                    html = part
                    continue
                if part.content_type.startswith(("text/", "multipart/")):
                    continue
            entry: dict[str, Any] = {"inline": disposition == "inline", "part": part}
            if file_name is not None:
                entry["file_name"] = file_name
            if part._part.get("Content-ID") is not None:
                entry["content_id"] = str(part._part["Content-ID"])
            attachments.append(entry)
        return {"text_part": text, "html_part": html, "header_part": self,
                "attachments": attachments}

    def __str__(self) -> str:
        return self._part.as_bytes(policy=email_policy.SMTP).decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"<MimePart {self.id} {self.content_type}>"


def parse_mime(data: bytes) -> MimePart:
    """The MIME tree of ``data`` (a lenient parse: broken structure is still readable)."""
    try:
        return MimePart(BytesParser(policy=email_policy.default).parsebytes(data))
    except RecursionError as exc:  # the stdlib parser's own limit on nesting
        raise MimeStructureError(f"MIME parts nested deeper than {MAX_DEPTH} levels") from exc
