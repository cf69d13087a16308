"""``kumo.mimepart.*`` as plain functions: parse and build MIME parts (KumoMTA's module of
that name).

``parse(text)`` reads an RFC 5322 message into a :class:`~kumocore.mail.mime_view.MimePart`
(the same objects ``msg:parse_mime()`` gives); ``new_text``, ``new_text_plain``,
``new_html``, ``new_binary`` and ``new_multipart`` make parts; ``builder()`` returns a
:class:`~kumocore.mail.mime_build.MessageBuilder`. Core owns them so that a plugin reaches
them through the public API (``kumocore.mimepart_functions``); the Lua plugin marks the
ones whose content may be binary so that Lua byte strings reach them as ``bytes``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kumocore.mail import mime_parts
from kumocore.mail.mime_build import MessageBuilder
from kumocore.mail.mime_view import MimePart, parse_mime

__all__ = ["BINARY_MIMEPART_FUNCTIONS", "mimepart_functions"]

#: The functions whose content argument may hold bytes that are not UTF-8.
BINARY_MIMEPART_FUNCTIONS = frozenset({
    "mimepart.parse", "mimepart.new_text", "mimepart.new_text_plain", "mimepart.new_html",
    "mimepart.new_binary",
})  # fmt: skip


def parse(text: str | bytes) -> MimePart:
    return parse_mime(text)


def new_text(content_type: str, content: str | bytes) -> MimePart:
    return MimePart(mime_parts.new_text(str(content_type), content))


def new_text_plain(content: str | bytes) -> MimePart:
    return MimePart(mime_parts.new_text("text/plain", content))


def new_html(content: str | bytes) -> MimePart:
    return MimePart(mime_parts.new_text("text/html", content))


def new_binary(content_type: str, content: str | bytes, options: Any = None) -> MimePart:
    opts = mime_parts.AttachmentOptions.from_table(options)
    return MimePart(mime_parts.new_binary(str(content_type), content, opts))


def new_multipart(
    content_type: str, parts: Sequence[MimePart], boundary: str | None = None
) -> MimePart:
    if isinstance(parts, dict) and not parts:
        parts = []  # an empty Lua table arrives as {}
    if not isinstance(parts, list | tuple) or not all(isinstance(p, MimePart) for p in parts):
        raise TypeError("new_multipart expects an array of MimePart objects")
    nodes = [part.node() for part in parts]
    boundary_text = None if boundary is None else str(boundary)
    return MimePart(mime_parts.new_multipart(str(content_type), nodes, boundary_text))


def builder() -> MessageBuilder:
    return MessageBuilder()


def mimepart_functions() -> dict[str, Callable[..., Any]]:
    """``kumo.mimepart.*`` by their names under ``kumo``."""
    return {
        "mimepart.parse": parse,
        "mimepart.new_text": new_text,
        "mimepart.new_text_plain": new_text_plain,
        "mimepart.new_html": new_html,
        "mimepart.new_binary": new_binary,
        "mimepart.new_multipart": new_multipart,
        "mimepart.builder": builder,
    }
