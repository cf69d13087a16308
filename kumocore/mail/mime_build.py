"""``kumo.mimepart.builder()``: KumoMTA's MessageBuilder.

Collects an optional plain text, HTML and AMP HTML body and attachments, then ``build()``
arranges them the usual way: text and HTML (and AMP, kept before the HTML, which some
clients only show when it is the last alternative) in ``multipart/alternative``; inline
attachments with that in ``multipart/related``; other attachments with all that in
``multipart/mixed``. The root gets ``Mime-Version: 1.0`` and a ``Date``.

``set_stable_content(true)`` makes the output repeatable for tests, as in KumoMTA: the
boundaries are ``ma-boundary``, ``mr-boundary`` and ``mm-boundary`` and the date
``Tue, 1 Jul 2003 10:52:37 +0200``. A builder builds once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from kumocore.mail import mime_parts
from kumocore.mail.mime_headers import Header
from kumocore.mail.mime_tree import Node
from kumocore.mail.mime_view import MimePart

__all__ = ["BuildError", "MessageBuilder"]

_STABLE_DATE = "Tue, 1 Jul 2003 10:52:37 +0200"


class BuildError(ValueError):
    """The builder cannot make a message of what it was given (or was used twice)."""


class MessageBuilder:
    """``builder:text_plain(s)``, ``text_html``, ``text_amp_html``, ``attach``,
    ``attach_part``, ``set_stable_content``, ``build()``."""

    __kumo_methods__ = True

    def __init__(self) -> None:
        self._text: str | bytes | None = None
        self._html: str | bytes | None = None
        self._amp: str | bytes | None = None
        self._inline: list[Node] = []
        self._attached: list[Node] = []
        self._stable = False
        self._built = False

    def _check(self) -> None:
        if self._built:
            raise BuildError("builder already built!")

    def set_stable_content(self, stable: bool) -> None:
        self._check()
        self._stable = bool(stable)

    def text_plain(self, text: str | bytes) -> None:
        self._check()
        self._text = text

    def text_html(self, html: str | bytes) -> None:
        self._check()
        self._html = html

    def text_amp_html(self, html: str | bytes) -> None:
        self._check()
        self._amp = html

    def attach(self, content_type: str, data: str | bytes, options: Any = None) -> None:
        self._check()
        opts = mime_parts.AttachmentOptions.from_table(options)
        part = mime_parts.new_binary(str(content_type), data, opts)
        (self._inline if opts is not None and opts.inline else self._attached).append(part)

    def attach_part(self, part: MimePart) -> None:
        self._check()
        node = part.node().copy()
        disposition = node.headers.get_first_named("Content-Disposition")
        inline = False
        if disposition is not None:
            inline = disposition.unstructured.split(";", 1)[0].strip().lower() == "inline"
        (self._inline if inline else self._attached).append(node)

    def _boundary(self, stable: str) -> str | None:
        return stable if self._stable else None

    def _content(self) -> Node:
        text = None if self._text is None else mime_parts.new_text("text/plain", self._text)
        html = None if self._html is None else mime_parts.new_text("text/html", self._html)
        amp = None if self._amp is None else mime_parts.new_text("text/x-amp-html", self._amp)
        if text is None and html is None:
            if amp is not None:
                raise BuildError(
                    "the AMP email spec requires at least one non-amp part "
                    "to be present in the message"
                )
            raise BuildError("no text or html part was specified")
        # The HTML part goes last: some clients only render the last alternative.
        parts = [p for p in (text, amp, html) if p is not None]
        if len(parts) == 1:
            return parts[0]
        return mime_parts.new_multipart(
            "multipart/alternative", parts, self._boundary("ma-boundary")
        )

    def build(self) -> MimePart:
        self._check()
        self._built = True
        root = self._content()
        if self._inline:
            root = mime_parts.new_multipart(
                "multipart/related", [root, *self._inline], self._boundary("mr-boundary")
            )
        if self._attached:
            root = mime_parts.new_multipart(
                "multipart/mixed", [root, *self._attached], self._boundary("mm-boundary")
            )
        if root.headers.get_first_named("Mime-Version") is None:
            root.headers.headers.append(Header("Mime-Version", "1.0"))
        if root.headers.get_first_named("Date") is None:
            now = mime_parts.format_date(dt.datetime.now(dt.UTC).replace(microsecond=0))
            date = _STABLE_DATE if self._stable else now
            root.headers.headers.append(Header("Date", date))
        return MimePart(root)


# Lua may pass binary (non-UTF-8) content: the Lua plugin's mark for methods taking byte
# strings (kumocore_lua_policy.byte_strings.BYTES_ATTR), set here as core cannot import it.
for _method in (
    MessageBuilder.attach,
    MessageBuilder.text_plain,
    MessageBuilder.text_html,
    MessageBuilder.text_amp_html,
):
    setattr(_method, "__kumo_bytes__", True)  # noqa: B010 (mypy: no attribute on functions)
