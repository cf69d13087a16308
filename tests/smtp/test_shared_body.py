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
    assert message.shared is None
    assert list(smtp.reception.data_spool.items) == [message.id]
