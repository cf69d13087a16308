"""The reply after DATA when the intake refuses, discards or half-fails, and the log
records written for accepted and refused messages."""

from __future__ import annotations

from kumocore import Rejection, hookimpl
from kumocore.mail.message import Message
from kumocore.mail.response import Response
from tests.reception.harness import HOSTNAME
from tests.smtp.conftest import SmtpEnv, StartSmtp

TECHNICAL_DIFFICULTIES = f"421 4.3.0 {HOSTNAME} technical difficulties"


class NullQueue:
    @hookimpl
    def kumo_smtp_server_message_received(self, message: Message) -> None:
        message.set_meta("queue", "null")


async def test_null_queue_is_accepted_and_discarded(start_smtp: StartSmtp) -> None:
    env = await start_smtp(NullQueue())
    client = await env.session()
    _, final = await client.send_mail("a@example.com", ["b@example.com"], "Subject: x\r\n\r\n")
    assert final.code == 250 and final.text.startswith("OK ids=")
    assert env.messages == [] and len(env.reception.meta_spool) == 0
    # As in KumoMTA, the discarded message still gets its Reception record.
    [reception] = await env.reception.records("Reception")
    assert reception.queue == "null" and reception.recipient == "b@example.com"


class QueueConfigFails:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    @hookimpl
    def kumo_get_queue_config(self, domain: str) -> None:
        if domain == "broken.example":
            raise self.error


async def test_queue_config_rejection_is_the_reply(start_smtp: StartSmtp) -> None:
    env = await start_smtp(QueueConfigFails(Rejection(451, "4.3.0 tenant unknown")))
    client = await env.session()
    _, final = await client.send_mail("a@example.com", ["b@broken.example"], "Subject: x\r\n\r\n")
    assert str(final) == "451 4.3.0 tenant unknown"


async def test_queue_config_policy_error_refuses_the_transaction_with_421(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp(QueueConfigFails(KeyError("nil tenant")))
    client = await env.session()
    _, final = await client.send_mail(
        "a@example.com", ["b@fine.example", "c@broken.example"], "Subject: x\r\n\r\n")
    assert str(final) == TECHNICAL_DIFFICULTIES
    # Nothing of the refused transaction is stored, so the client's retry cannot deliver
    # the other recipient twice (KumoMTA's behaviour).
    assert env.messages == []


def failing_data_spool(env: SmtpEnv, marker: bytes, *, spool_name: str = "data") -> None:
    spool = getattr(env.reception, f"{spool_name}_spool")
    original = spool.put

    async def put(key: str, value: bytes) -> None:
        if marker in value:
            raise OSError("disk on fire")
        await original(key, value)

    spool.put = put  # type: ignore[method-assign]


async def test_spool_failure_for_some_recipients_is_retried_not_lost(smtp: SmtpEnv) -> None:
    # The two recipients share one body record; fail@'s own (meta) record fails.
    failing_data_spool(smtp, b'"fail@example.com"', spool_name="meta")
    client = await smtp.session()
    _, final = await client.send_mail(
        "a@example.com", ["ok@example.com", "fail@example.com"], "Subject: x\r\n\r\n")
    # No 250: it would acknowledge fail@ too, which was never stored. The client retries
    # both; ok@ may then arrive twice, which is better than losing fail@.
    assert str(final) == TECHNICAL_DIFFICULTIES
    assert [m.recipient.email for m in smtp.messages] == ["ok@example.com"]


async def test_spool_failure_for_all_recipients_gives_421(smtp: SmtpEnv) -> None:
    failing_data_spool(smtp, b"Subject: x")
    client = await smtp.session()
    _, final = await client.send_mail("a@example.com", ["b@example.com"], "Subject: x\r\n\r\n")
    assert str(final) == TECHNICAL_DIFFICULTIES


async def test_every_accepted_message_is_logged_as_reception(smtp: SmtpEnv) -> None:
    client = await smtp.session()
    await client.send_mail(
        "a@example.com", ["b@example.com", "c@example.com"], "Subject: x\r\n\r\n")
    records = await smtp.reception.records("Reception")
    assert sorted(r.recipient for r in records) == ["b@example.com", "c@example.com"]
    assert {r.reception_protocol for r in records} == {"ESMTP"}


async def test_refusals_are_logged_as_rejection_records(start_smtp: StartSmtp) -> None:
    env = await start_smtp()
    client = await env.session("127.0.0.5")
    await client.command("MAIL FROM:<a@example.com>")
    reply = await client.command("RCPT TO:<b@other.example>")
    assert reply.code == 550
    await client.command("AUTH PLAIN AHVzZXIAc2VjcmV0")
    [relay, auth] = await env.reception.records("Rejection")
    assert relay.response.to_single_line() == str(reply)
    assert relay.response.command == "RCPT TO:<b@other.example>"
    assert (relay.sender, relay.id) == ("a@example.com", "")
    assert relay.peer_address is not None
    assert (relay.peer_address.name, relay.peer_address.addr) == ("client.test", "127.0.0.5")
    assert relay.meta["received_from"].startswith("127.0.0.5:")
    # Credentials never reach the logs: only the mechanism is recorded.
    assert auth.response.command == "AUTH PLAIN"


class RelayDeniedClassifier:
    @hookimpl
    def kumo_classify_bounce(self, response: Response) -> str:
        return "RelayDenied" if response.code == 550 else "Uncategorized"


async def test_rejection_records_are_classified(start_smtp: StartSmtp) -> None:
    env = await start_smtp(RelayDeniedClassifier())
    client = await env.session("127.0.0.5")
    await client.command("MAIL FROM:<a@example.com>")
    assert (await client.command("RCPT TO:<b@other.example>")).code == 550
    [rejection] = await env.reception.records("Rejection")
    assert rejection.bounce_classification == "RelayDenied"
