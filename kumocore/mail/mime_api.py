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

from kumocore.errors import ConfigError
from kumocore.mail import mime_parts
from kumocore.mail.mime_build import MessageBuilder
from kumocore.mail.mime_view import MimePart, parse_mime
from kumocore.policy.policyfn import lua_type_name

__all__ = ["BINARY_MIMEPART_FUNCTIONS", "mimepart_functions"]

#: The functions whose content argument may hold bytes that are not UTF-8.
BINARY_MIMEPART_FUNCTIONS = frozenset({
    "mimepart.parse", "mimepart.new_text", "mimepart.new_text_plain", "mimepart.new_html",
    "mimepart.new_binary",
})  # fmt: skip


def _text(function: str, what: str, value: Any) -> str | bytes:
    """A string argument (Lua byte strings arrive as bytes), or a refusal naming it: a
    nil content type once became the type "None", a nil content a Python AttributeError."""
    if isinstance(value, str | bytes):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # Lua would coerce a number to its text
    raise ConfigError(f"kumo.mimepart.{function}: {what} must be a string, "
                      f"got {lua_type_name(value)}")


def _content_type(function: str, value: Any) -> str:
    text = _text(function, "CONTENT_TYPE", value)
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else text


def parse(text: str | bytes) -> MimePart:
    return parse_mime(_text("parse", "TEXT", text))


def new_text(content_type: str, content: str | bytes) -> MimePart:
    return MimePart(mime_parts.new_text(_content_type("new_text", content_type),
                                        _text("new_text", "CONTENT", content)))


def new_text_plain(content: str | bytes) -> MimePart:
    return MimePart(mime_parts.new_text("text/plain", _text("new_text_plain", "CONTENT", content)))


def new_html(content: str | bytes) -> MimePart:
    return MimePart(mime_parts.new_text("text/html", _text("new_html", "CONTENT", content)))


def new_binary(content_type: str, content: str | bytes, options: Any = None) -> MimePart:
    kind = _content_type("new_binary", content_type)
    data = _text("new_binary", "CONTENT", content)
    opts = mime_parts.AttachmentOptions.from_table(options)
    return MimePart(mime_parts.new_binary(kind, data, opts))


def new_multipart(
    content_type: str, parts: Sequence[MimePart], boundary: str | None = None
) -> MimePart:
    kind = _content_type("new_multipart", content_type)
    if isinstance(parts, dict) and not parts:
        parts = []  # an empty Lua table arrives as {}
    if not isinstance(parts, list | tuple) or not all(isinstance(p, MimePart) for p in parts):
        raise ConfigError("kumo.mimepart.new_multipart: PARTS must be an array of MimePart "
                          f"objects, got {lua_type_name(parts)}")
    nodes = [part.node() for part in parts]
    boundary_text = None if boundary is None else str(boundary)
    return MimePart(mime_parts.new_multipart(kind, nodes, boundary_text))


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
