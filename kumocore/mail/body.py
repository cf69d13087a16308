"""One body shared by the per-recipient messages of a transaction.

An SMTP transaction with 200 recipients becomes 200 :class:`~kumocore.mail.message.Message`
objects (one recipient each, as in KumoMTA). Each used to hold its own copy of the body,
so 200 x 5 MiB cost a gigabyte. Now they hold the same :class:`SharedBody` plus their own
small *head*: the header lines added in front of it for that recipient alone
(``Received``, a DKIM signature, ``msg:prepend_header``). Prepending only grows the head;
any other edit (``set_data``, appending or removing a header) gives that one message its
own copy first (copy-on-write), so the others never see it.

The spool keeps the sharing (see :mod:`kumocore.spool.store`): the body is stored once
under :attr:`SharedBody.key`, each meta record names it and carries its head.

What is derived from the body alone is computed once for all its messages: the parsed
header block, and a parsed DSN/ARF report (:attr:`SharedBody.derived`).
"""

from __future__ import annotations

from typing import Any

import kumocore.mail.headers as _h
from kumocore.mail.ids import new_message_id

__all__ = [
    "BODY_KEY_SUFFIX", "JoinedHeaders", "SharedBody", "crlf_paired", "is_body_key", "new_body_key",
]

#: Data-spool keys of shared bodies end with this; a message's own body is under its id.
BODY_KEY_SUFFIX = ".body"


def new_body_key() -> str:
    return new_message_id() + BODY_KEY_SUFFIX


def is_body_key(key: str) -> bool:
    return key.endswith(BODY_KEY_SUFFIX)


def crlf_paired(data: bytes) -> bool:
    """Whether every CR and LF in ``data`` is part of a CRLF pair: what ``crlf_clean``
    (of a body, of a message) claims. The plain definition: reception answers it for
    whole bodies in one scan (:mod:`kumocore.mail.crlf`), held to this by its tests."""
    pairs = data.count(b"\r\n")
    return data.count(b"\r") == pairs and data.count(b"\n") == pairs


class SharedBody:
    """Bytes shared by several messages, with what was derived from them, cached.

    A *sole* body belongs to one message only: reception keeps a one-recipient message's
    body apart from its head too, so that its trace headers are prepended without a copy
    of the body each (the fourteenth round of docs/performance.md), but the spool stores
    it with that head as the message's own record (:meth:`MessageStore.save
    <kumocore.spool.store.MessageStore.save>`), never under a body key.
    """

    __slots__ = ("_headers", "_key", "crlf_clean", "data", "derived", "no_dot_lines", "sole")

    def __init__(self, data: bytes, key: str | None = None, *, crlf_clean: bool = False,
                 no_dot_lines: bool = False, sole: bool = False) -> None:
        self.data = data
        self._key = key
        self.sole = sole
        #: True only when every CR and LF in :attr:`data` is known to be part of a CRLF
        #: pair (reception checked it); delivery then skips re-normalising line endings.
        #: ``data`` is never replaced (an edit gives the message its own copy).
        self.crlf_clean = crlf_clean
        #: True only when no line of :attr:`data` after the first is known to start with
        #: a full stop (reception's DATA reader saw none); delivery then skips its search
        #: for lines to dot-stuff. False means "not known".
        self.no_dot_lines = no_dot_lines
        self._headers: _h.HeaderBlock | None = None
        #: Results computed from the body once for all its messages (e.g. a parsed report).
        self.derived: dict[str, Any] = {}

    @property
    def key(self) -> str:
        """The data-spool key of a body stored on its own (made on first use)."""
        if self._key is None:
            self._key = new_body_key()
        return self._key

    def __len__(self) -> int:
        return len(self.data)

    def headers(self) -> _h.HeaderBlock:
        """The body's own header block, parsed on first use, once for every message."""
        if self._headers is None:
            self._headers = _h.HeaderBlock(self.data)
        return self._headers


class JoinedHeaders:
    """The header fields of a message's head, then those of its shared body: lookups only.

    Field offsets are relative to each part, so editing goes through the message's own
    copy (:meth:`Message._own`), never through this view.
    """

    __slots__ = ("_body", "_head")

    def __init__(self, head: _h.HeaderBlock, body: _h.HeaderBlock) -> None:
        self._head = head
        self._body = body

    @property
    def fields(self) -> list[_h.HeaderField]:
        return self._head.fields + self._body.fields

    def get_all(self, name: str) -> list[_h.HeaderField]:
        return self._head.get_all(name) + self._body.get_all(name)

    def get_first(self, name: str) -> _h.HeaderField | None:
        return self._head.get_first(name) or self._body.get_first(name)

    def in_whole(self, fields: list[_h.HeaderField], head_size: int) -> list[_h.HeaderField]:
        """``fields`` of this view with offsets into the head and body joined (a head of
        ``head_size`` bytes): what an edit of the message's own copy needs, without
        parsing that copy again."""
        head = {id(f) for f in self._head.fields}
        return [f if id(f) in head else
                _h.HeaderField(f.name, f.raw_value, f.start + head_size, f.end + head_size)
                for f in fields]
