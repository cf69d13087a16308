"""Removing headers from a message whose body is shared gives exactly the bytes the same
removal gives on an unshared copy: the removed fields' offsets are taken from the shared
body's parse (shifted past the message's own head), not from a parse of the copy."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kumocore.mail.body import SharedBody
from kumocore.mail.message import Message

HEAD = b"Received: one\r\nX-Tenant: head\r\n"
BODY = (
    b"From: a@src.test\r\nX-Tenant: blue\r\nSubject: hi\r\nX-Tenant: red\r\n"
    b"X-Campaign: c\r\n\r\n" + b"x" * 100 + b"\r\n"
)

Edit = Callable[[Message], None]
EDITS: dict[str, Edit] = {
    "remove_all_named_headers": lambda m: m.remove_all_named_headers("x-tenant"),
    "remove_all_named_headers in the head only": lambda m: m.remove_all_named_headers("Received"),
    "remove_x_headers by name": lambda m: m.remove_x_headers(["X-Tenant"]),
    "remove_x_headers, all": lambda m: m.remove_x_headers(),
    "import_headers with remove": lambda m: m.import_headers([{"name": "X-*", "remove": True}]),
}


@pytest.mark.parametrize("edit", EDITS.values(), ids=EDITS.keys())
def test_a_removal_from_a_shared_body_gives_the_bytes_of_an_unshared_one(edit: Edit) -> None:
    shared = SharedBody(BODY)
    sharing = Message("a@src.test", "one@dst.test", HEAD, shared=shared)
    sharing.get_first_named_header_value("Subject")  # the joined view is parsed, cached
    alone = Message("a@src.test", "one@dst.test", HEAD + BODY)
    edit(sharing)
    edit(alone)
    assert sharing.data == alone.data
    assert sharing.data != HEAD + BODY
    assert sharing.data.endswith(b"\r\n\r\n" + b"x" * 100 + b"\r\n")
    assert sharing.meta == alone.meta
    assert shared.data == BODY  # the shared bytes never change
    # The message reads its own bytes afterwards.
    assert sharing.get_all_headers() == alone.get_all_headers()
