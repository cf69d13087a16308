"""A multi-recipient transaction keeps one body in memory and one record in the spool."""

from __future__ import annotations

from tests.smtp.conftest import SmtpEnv

RECIPIENTS = [f"r{n}@example.com" for n in range(50)]
BODY = "Subject: many\r\nX-Tenant: blue\r\n\r\n" + ("line of body text\r\n" * 2000)


async def test_recipients_of_one_transaction_share_one_body_in_memory_and_spool(
    smtp: SmtpEnv,
) -> None:
    client = await smtp.session()
    _, final = await client.send_mail("a@example.com", RECIPIENTS, BODY)
    assert final.code == 250
    messages = smtp.messages
    assert len(messages) == len(RECIPIENTS)
    assert len({id(m.shared) for m in messages}) == 1 and messages[0].shared is not None
    assert len(smtp.reception.data_spool) == 1
    assert len(smtp.reception.meta_spool) == len(RECIPIENTS)
    for message in messages:  # each still has its own Received header naming its recipient
        assert f"for <{message.recipient.email}>" in message.get_first_named_header_value(
            "Received")
        assert message.data.endswith(BODY.encode())


async def test_a_single_recipient_message_keeps_its_own_record(smtp: SmtpEnv) -> None:
    client = await smtp.session()
    _, final = await client.send_mail("a@example.com", ["one@example.com"], BODY)
    assert final.code == 250
    [message] = smtp.messages
    assert list(smtp.reception.data_spool.items) == [message.id]
    assert message.spool_ref is None  # its meta names no body key
    stored = smtp.reception.data_spool.items[message.id]
    assert stored == message.data and stored.endswith(BODY.encode())
    assert stored.startswith(message.head) and b"for <one@example.com>" in message.head


async def test_a_single_recipient_body_is_held_apart_from_its_trace_headers(
    smtp: SmtpEnv,
) -> None:
    """Its Received and supplemental headers are prepended to the head alone: no copy
    of the body per header, and delivery sends the two as they are."""
    client = await smtp.session()
    _, final = await client.send_mail("a@example.com", ["one@example.com"], BODY)
    assert final.code == 250
    [message] = smtp.messages
    assert message.shared is not None and message.shared.sole
    assert message.shared.data == BODY.encode()
    first, second = message.head.split(b"\r\n")[:2]
    assert first.startswith(b"X-KumoRef: ") and second.startswith(b"Received: ")
    message.prepend_header("X-Late", "1")
    assert message.shared is not None and message.head.startswith(b"X-Late: 1\r\n")


async def test_reception_tells_delivery_whether_a_body_has_dot_lines(smtp: SmtpEnv) -> None:
    client = await smtp.session()
    _, final = await client.send_mail("a@example.com", ["one@example.com"], BODY)
    assert final.code == 250
    _, final = await client.send_mail("a@example.com", ["two@example.com"],
                                      "Subject: dots\r\n\r\nfirst\r\n..second\r\n")
    assert final.code == 250
    plain, dotted = smtp.messages
    assert plain.shared is not None and plain.shared.no_dot_lines
    assert dotted.shared is not None and not dotted.shared.no_dot_lines
    assert dotted.shared.data.endswith(b"\r\n.second\r\n")  # as sent, stuffed: ".."
