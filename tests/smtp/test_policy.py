"""Policy events at each SMTP stage: Rejection replies, 421 on policy errors, and the
messages (one per recipient) with their meta and trace headers."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from kumocore import PolicyError, Rejection, hookimpl
from kumocore.mail.address import EnvelopeAddress
from kumocore.mail.message import Message
from tests.reception.harness import HOSTNAME
from tests.smtp.conftest import StartSmtp

TECHNICAL_DIFFICULTIES = f"421 4.3.0 {HOSTNAME} technical difficulties"


class Refuse:
    """A policy raising ``error`` in the event named ``event``."""

    def __init__(self, event: str, error: BaseException) -> None:
        self.event, self.error = event, error

    def _maybe(self, event: str) -> None:
        if event == self.event:
            raise self.error

    @hookimpl
    def kumo_smtp_server_connection_accepted(self, conn_meta: dict[str, Any]) -> None:
        self._maybe("connection_accepted")

    @hookimpl
    def kumo_smtp_server_ehlo(self, domain: str) -> None:
        self._maybe("ehlo")

    @hookimpl
    def kumo_smtp_server_mail_from(self, sender: EnvelopeAddress) -> None:
        self._maybe("mail_from")

    @hookimpl
    def kumo_smtp_server_mail_rcpt_to(self, recipient: EnvelopeAddress) -> None:
        if recipient.user != "ok":
            self._maybe("mail_rcpt_to")

    @hookimpl
    def kumo_smtp_server_message_received(self, message: Message) -> None:
        if message.recipient.user != "ok":
            self._maybe("message_received")


async def test_connection_refused_by_policy_gets_its_reply_and_is_closed(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp(Refuse("connection_accepted", Rejection(550, "5.7.1 not you")))
    client = await env.client()
    assert str(await client.read_reply()) == "550 5.7.1 not you"
    assert await client.closed()


@pytest.mark.parametrize("event", ["connection_accepted", "ehlo", "mail_from", "mail_rcpt_to"])
async def test_policy_error_gives_421_technical_difficulties_and_closes(
    start_smtp: StartSmtp, event: str,
) -> None:
    env = await start_smtp(Refuse(event, PolicyError("attempt to index a nil value")))
    client = await env.client()
    reply = await client.read_reply()
    if event != "connection_accepted":
        assert reply.code == 220
        reply = await client.command("EHLO client.test")
    if event in ("mail_from", "mail_rcpt_to"):
        reply = await client.command("MAIL FROM:<a@example.com>")
    if event == "mail_rcpt_to":
        reply = await client.command("RCPT TO:<b@example.com>")
    assert str(reply) == TECHNICAL_DIFFICULTIES
    assert await client.closed()


async def test_plain_python_exception_in_a_policy_is_a_policy_error(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp(Refuse("ehlo", KeyError("tenant")))
    client = await env.client()
    await client.read_reply()
    assert str(await client.command("EHLO client.test")) == TECHNICAL_DIFFICULTIES


async def test_ehlo_rejection_keeps_the_session_open(start_smtp: StartSmtp) -> None:
    env = await start_smtp(Refuse("ehlo", Rejection(550, "5.7.1 bad helo")))
    client = await env.client()
    await client.read_reply()
    assert str(await client.command("EHLO bad.test")) == "550 5.7.1 bad helo"
    assert (await client.command("NOOP")).code == 250


async def test_rejection_with_421_closes_the_connection(start_smtp: StartSmtp) -> None:
    env = await start_smtp(Refuse("mail_from", Rejection(421, "4.7.0 come back later")))
    client = await env.session()
    assert str(await client.command("MAIL FROM:<a@example.com>")) == "421 4.7.0 come back later"
    assert await client.closed()


async def test_mail_from_rejection_starts_no_transaction(start_smtp: StartSmtp) -> None:
    env = await start_smtp(Refuse("mail_from", Rejection(550, "5.1.8 bad sender")))
    client = await env.session()
    assert str(await client.command("MAIL FROM:<a@example.com>")) == "550 5.1.8 bad sender"
    assert (await client.command("RCPT TO:<b@example.com>")).code == 503


async def test_rcpt_rejection_skips_only_that_recipient(start_smtp: StartSmtp) -> None:
    env = await start_smtp(Refuse("mail_rcpt_to", Rejection(450, "4.2.1 mailbox busy")))
    client = await env.session()
    rcpts, final = await client.send_mail(
        "a@example.com", ["ok@example.com", "busy@example.com"], "Subject: x\r\n\r\n")
    assert [str(r) for r in rcpts] == ["250 2.1.5 OK", "450 4.2.1 mailbox busy"]
    assert final.code == 250
    assert [m.recipient.email for m in env.messages] == ["ok@example.com"]


async def test_message_rejection_refuses_the_whole_transaction(start_smtp: StartSmtp) -> None:
    env = await start_smtp(Refuse("message_received", Rejection(554, "5.7.1 spam")))
    client = await env.session()
    _, final = await client.send_mail(
        "a@example.com", ["ok@example.com", "no@example.com"], "Subject: x\r\n\r\n")
    assert str(final) == "554 5.7.1 spam"
    assert env.messages == []
    assert len(env.reception.meta_spool) == 0
    assert (await client.command("NOOP")).code == 250


async def test_message_policy_error_gives_421_and_spools_nothing(start_smtp: StartSmtp) -> None:
    env = await start_smtp(Refuse("message_received", PolicyError("boom", where="p.lua:3")))
    client = await env.session()
    _, final = await client.send_mail("a@example.com", ["no@example.com"], "Subject: x\r\n\r\n")
    assert str(final) == TECHNICAL_DIFFICULTIES
    assert await client.closed()
    assert env.messages == [] and len(env.reception.meta_spool) == 0


class SlowPolicy:
    @hookimpl
    async def kumo_smtp_server_message_received(self, message: Message) -> None:
        await asyncio.sleep(2)


async def test_data_processing_timeout_gives_451(start_smtp: StartSmtp) -> None:
    env = await start_smtp(SlowPolicy(), data_processing_timeout="0.2s")
    client = await env.session()
    _, final = await client.send_mail("a@example.com", ["b@example.com"], "Subject: x\r\n\r\n")
    assert str(final) == "451 4.4.5 data_processing_timeout exceeded (rx)"
    assert env.messages == []


class Tagging:
    """Marks the connection, edits each message, and remembers what it saw."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    @hookimpl
    def kumo_smtp_server_connection_accepted(self, conn_meta: dict[str, Any]) -> None:
        conn_meta["x_pool"] = "blue"

    @hookimpl
    def kumo_smtp_server_message_received(self, message: Message) -> None:
        self.seen.append(message.data)
        message.set_meta("tenant", message.recipient.user)
        message.append_header("X-Policy", "seen")


async def test_each_recipient_becomes_its_own_message_with_meta(start_smtp: StartSmtp) -> None:
    policy = Tagging()
    env = await start_smtp(policy, meta={"x_listener": "mx1"})
    client = await env.session()
    recipients = ["one@a.example", "two@b.example", "three@a.example"]
    _, final = await client.send_mail("sender@example.com", recipients,
                                      "Subject: hello\r\n\r\nbody\r\n")
    ids = final.text.removeprefix("OK ids=").split(" ")
    assert final.code == 250 and len(ids) == 3
    messages = {m.id: m for m in env.messages}
    assert [messages[i].recipient.email for i in ids] == recipients
    for message_id, recipient in zip(ids, recipients, strict=True):
        message = messages[message_id]
        meta = message.meta
        assert meta["reception_protocol"] == "ESMTP"
        assert meta["received_from"].startswith("127.0.0.1:")
        assert meta["received_via"] == f"127.0.0.1:{env.port}"
        assert meta["hostname"] == HOSTNAME
        assert meta["ehlo_domain"] == "client.test"
        assert (meta["x_listener"], meta["x_pool"]) == ("mx1", "blue")
        assert meta["tenant"] == recipient.split("@")[0]
        assert message.sender.email == "sender@example.com"
        received = " ".join((message.get_first_named_header_value("Received") or "").split())
        assert received.startswith(f"from client.test (127.0.0.1) by {HOSTNAME}")
        assert f"with ESMTP id {message_id} for <{recipient}>;" in received
        assert message.get_first_named_header_value("X-Policy") == "seen"
        assert message.data.endswith(b"Subject: hello\r\nX-Policy: seen\r\n\r\nbody\r\n")
    # The policy saw the Received header, but not yet the supplemental one.
    assert policy.seen[0].startswith(b"Received: ")


async def test_supplemental_header_names_recipient_and_chosen_meta(start_smtp: StartSmtp) -> None:
    env = await start_smtp(Tagging(), trace_headers={"include_meta_names": ["tenant"]})
    client = await env.session()
    await client.send_mail("a@example.com", ["bob@example.com"], "Subject: x\r\n\r\n")
    message = env.messages[0]
    assert message.data.startswith(b"X-KumoRef: ")
    value = message.get_first_named_header_value("X-KumoRef") or ""
    assert json.loads(base64.b64decode(value)) == {
        "_@_": "\\_/", "recipient": "bob@example.com", "tenant": "bob"}


async def test_trace_headers_can_be_turned_off(start_smtp: StartSmtp) -> None:
    env = await start_smtp(trace_headers={"received_header": False,
                                          "supplemental_header": False})
    client = await env.session()
    await client.send_mail("a@example.com", ["b@example.com"], "Subject: bare\r\n\r\nx\r\n")
    assert env.messages[0].data == b"Subject: bare\r\n\r\nx\r\n"


async def test_reject_with_a_success_code_is_a_policy_error(start_smtp: StartSmtp) -> None:
    env = await start_smtp(Refuse("message_received", Rejection(250, "2.0.0 pretend")))
    client = await env.session()
    _, final = await client.send_mail("a@example.com", ["no@example.com"], "Subject: x\r\n\r\n")
    assert str(final) == TECHNICAL_DIFFICULTIES
    assert env.messages == []
