"""Messages of one transaction share one body; an edit gives one message its own copy."""

from __future__ import annotations

from kumocore.mail.body import SharedBody
from kumocore.mail.message import Message

BODY = b"From: a@src.test\r\nX-Tenant: blue\r\nSubject: hi\r\n\r\n" + b"x" * 1000 + b"\r\n"


def shared_pair() -> tuple[SharedBody, Message, Message]:
    shared = SharedBody(BODY)
    one = Message("a@src.test", "one@dst.test", b"Received: one\r\n", shared=shared)
    two = Message("a@src.test", "two@dst.test", b"Received: two\r\n", shared=shared)
    return shared, one, two


def test_messages_of_a_transaction_hold_the_same_body_object() -> None:
    shared, one, two = shared_pair()
    assert one.shared is two.shared is shared
    assert one.data == b"Received: one\r\n" + BODY
    assert two.data == b"Received: two\r\n" + BODY
    assert one.size == len(one.data)


def test_prepending_a_header_keeps_the_body_shared() -> None:
    shared, one, two = shared_pair()
    one.prepend_header("X-KumoRef", "abc")
    assert one.shared is shared
    assert one.data == b"X-KumoRef: abc\r\nReceived: one\r\n" + BODY
    assert two.data == b"Received: two\r\n" + BODY
    assert one.size == len(one.data)


def test_an_edit_copies_the_body_for_that_message_only() -> None:
    shared, one, two = shared_pair()
    one.append_header("X-Added", "1")
    assert one.shared is None
    assert b"X-Added: 1\r\n\r\n" in one.data
    two.remove_all_named_headers("X-Tenant")
    assert two.shared is None and b"X-Tenant" not in two.data
    assert shared.data == BODY  # the shared bytes never change
    three = Message("a@src.test", "3@dst.test", b"", shared=shared)
    three.set_data(b"Subject: new\r\n\r\nnew\r\n")
    assert three.data == b"Subject: new\r\n\r\nnew\r\n" and shared.data == BODY


def test_removing_an_absent_header_keeps_the_body_shared() -> None:
    shared, one, _ = shared_pair()
    one.remove_all_named_headers("X-Not-There")
    one.remove_x_headers(["X-Absent"])
    assert one.shared is shared


def test_header_lookups_see_head_then_body_and_parse_the_body_once() -> None:
    shared, one, two = shared_pair()
    assert one.get_first_named_header_value("X-Tenant") == "blue"
    assert one.get_first_named_header_value("Received") == "one"
    assert two.get_all_named_header_values("Received") == ["two"]
    assert [name for name, _ in one.get_all_headers()] == [
        "Received", "From", "X-Tenant", "Subject"]
    block = shared.headers()
    assert two.get_first_named_header_value("Subject") == "hi"
    assert shared.headers() is block  # one parse of the body's header block for both


def test_dkim_signing_a_shared_message_prepends_to_its_head() -> None:
    class Signer:
        def sign(self, data: bytes) -> bytes:
            assert data.endswith(BODY)
            return b"DKIM-Signature: v=1; b=sig\r\n"

    shared, one, two = shared_pair()
    one.dkim_sign(Signer())
    assert one.shared is shared
    assert one.data.startswith(b"DKIM-Signature: v=1; b=sig\r\nReceived: one\r\n")
    assert b"DKIM" not in two.data


def test_spool_reference_round_trips_through_the_meta_record() -> None:
    _, one, _ = shared_pair()
    one.spool_ref = ("k" * 32 + ".body", b"Received: \xe9one\r\n")
    again = Message.from_spool(one.id, one.meta_bytes(), b"")
    assert again.spool_ref == one.spool_ref
