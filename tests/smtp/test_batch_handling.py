"""``batch_handling = 'BatchByDomain'``: one message per recipient domain, as KumoMTA.

Real listeners on 127.0.0.1 over a node's intake, spool and queues (held, so what is
accepted stays queued); clients bound to 127.0.0.5, outside ``relay_hosts``, so the
listener relays only to the domains it is told to.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import orjson
import pytest

from kumocore import hookimpl
from kumocore.mail.message import Message
from kumocore.testing.node import Node
from tests.smtp.conftest import StartSmtp

CLIENT = "127.0.0.5"
DOMAINS = {"one.example": {"relay_to": True}, "two.example": {"relay_to": True}}
BATCH = {"batch_handling": "BatchByDomain", "domains": DOMAINS}
#: Five recipients over two domains; KumoMTA compares domains lowercased (kumocore's
#: addresses hold the domain lowercased already).
RECIPIENTS = ["a@one.example", "x@two.example", "b@ONE.example", "y@two.example",
              "c@one.example"]  # fmt: skip
#: As the messages name them.
AS_HELD = [r.lower() for r in RECIPIENTS]
BODY = "Subject: batch\r\n\r\nhello\r\n"


class Received:
    """Counts ``smtp_server_message_received``: once per message made."""

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    @hookimpl
    def kumo_smtp_server_message_received(self, message: Message) -> None:
        self.seen.append([r.email for r in message.recipients])


def emails(message: Message) -> list[str]:
    return [r.email for r in message.recipients]


def kumo_ref(message: Message) -> dict[str, Any]:
    value = message.get_first_named_header_value("X-KumoRef")
    assert value is not None
    decoded: dict[str, Any] = orjson.loads(base64.b64decode("".join(value.split())))
    return decoded


async def test_recipients_of_one_domain_become_one_message_with_a_recipient_list(
    start_smtp: StartSmtp,
) -> None:
    policy = Received()
    env = await start_smtp(policy, **BATCH)
    client = await env.session(CLIENT)
    rcpts, final = await client.send_mail("s@sender.example", RECIPIENTS, BODY)
    assert [r.code for r in rcpts] == [250] * 5 and final.code == 250, final
    one, two = env.messages
    assert emails(one) == ["a@one.example", "b@one.example", "c@one.example"]
    assert emails(two) == ["x@two.example", "y@two.example"]
    assert str(final) == f"250 OK ids={one.id} {two.id}"
    # smtp_server_message_received ran once per message, seeing its whole list.
    assert policy.seen == [emails(one), emails(two)]
    # The spool's meta record holds the list (KumoMTA's one-or-many "recipient").
    for message in (one, two):
        record = orjson.loads(env.reception.meta_spool.items[message.id])
        assert record["recipient"] == emails(message)
        # One Received header, "for" the first recipient only (RFC 5321 4.4).
        received = message.get_first_named_header_value("Received")
        assert received is not None and f"for <{emails(message)[0]}>" in received
        assert len(message.get_all_named_header_values("Received")) == 1
        assert kumo_ref(message)["recipient"] == emails(message)
        assert message.get_data().endswith(b"\r\n\r\nhello\r\n")
    # One Reception record per message, naming all its recipients as a JSON list.
    await env.reception.records("Reception")
    receptions = env.reception.node.log_sink.parsed("Reception")
    assert sorted((r["id"], r["recipient"]) for r in receptions) == sorted(
        (m.id, emails(m)) for m in (one, two)
    )


async def test_a_lone_recipient_of_its_domain_stays_a_plain_address(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp(**BATCH)
    client = await env.session(CLIENT)
    _, final = await client.send_mail(
        "s@sender.example", ["a@one.example", "b@one.example", "x@two.example"], BODY
    )
    assert final.code == 250, final
    one, two = env.messages
    assert len(one.recipients) == 2 and two.recipients == (two.recipient,)
    assert orjson.loads(env.reception.meta_spool.items[two.id])["recipient"] == "x@two.example"
    await env.reception.records("Reception")
    [record] = env.reception.node.log_sink.parsed("Reception", id=two.id)
    assert record["recipient"] == "x@two.example"  # a string, not a list of one


async def test_bifurcate_always_is_still_one_message_per_recipient(
    start_smtp: StartSmtp,
) -> None:
    policy = Received()
    env = await start_smtp(policy, domains=DOMAINS)  # the default batch_handling
    client = await env.session(CLIENT)
    _, final = await client.send_mail("s@sender.example", RECIPIENTS, BODY)
    assert final.code == 250, final
    assert [emails(m) for m in env.messages] == [[r] for r in AS_HELD]
    assert policy.seen == [[r] for r in AS_HELD]


async def test_a_batch_holds_only_the_recipients_the_rcpt_check_accepted(
    start_smtp: StartSmtp,
) -> None:
    # KumoMTA decides relaying at RCPT time per recipient, and for the batch by its first
    # recipient: a refused recipient is never in a batch.
    env = await start_smtp(**BATCH)
    client = await env.session(CLIENT)
    rcpts, final = await client.send_mail(
        "s@sender.example", ["a@one.example", "z@elsewhere.example", "b@one.example"], BODY
    )
    assert [r.code for r in rcpts] == [250, 550, 250] and final.code == 250
    [message] = env.messages
    assert emails(message) == ["a@one.example", "b@one.example"]


async def test_the_option_applies_per_peer_block(start_smtp: StartSmtp) -> None:
    env = await start_smtp(
        domains=DOMAINS, peer={"127.0.0.5/32": {"batch_handling": "BatchByDomain"}}
    )
    batched = await env.session(CLIENT)
    _, final = await batched.send_mail("s@sender.example", RECIPIENTS[:3], BODY)
    assert final.code == 250
    plain = await env.session("127.0.0.1")
    _, final = await plain.send_mail("s@sender.example", RECIPIENTS[:3], BODY)
    assert final.code == 250
    assert [emails(m) for m in env.messages] == [
        ["a@one.example", "b@one.example"], ["x@two.example"],
        ["a@one.example"], ["x@two.example"], ["b@one.example"]]  # fmt: skip


class Enumerated:
    def __init__(self) -> None:
        self.recipients: dict[str, list[str]] = {}

    @hookimpl
    def kumo_spool_message_enumerated(self, message: Message) -> None:
        self.recipients[message.id] = emails(message)
        message.due = time.time() + 3600  # kept in its scheduled queue, not delivered


@pytest.mark.slow
async def test_a_batch_recovered_from_the_spool_keeps_its_recipient_list(
    make_node: Any, tmp_path: Any
) -> None:
    listener = {"listen": "127.0.0.1:0", **BATCH}
    first: Node = await make_node(esmtp=listener, spool="rocksdb", tmp_path=tmp_path)
    await first.hold()
    refused = await first.send("s@sender.example", RECIPIENTS, BODY, source_address=CLIENT)
    assert refused == {}
    services = first.runtime.services
    assert services is not None
    made = {m.id: emails(m) for m in services.queues.messages.values()}
    assert sorted(made.values()) == [
        ["a@one.example", "b@one.example", "c@one.example"],
        ["x@two.example", "y@two.example"]]  # fmt: skip
    await first.stop()
    enumerated = Enumerated()
    second: Node = await make_node(
        plugins=[enumerated], esmtp=listener, spool="rocksdb", tmp_path=tmp_path
    )
    deadline = time.monotonic() + 5
    while len(enumerated.recipients) < 2:
        assert time.monotonic() < deadline, enumerated.recipients
        await asyncio.sleep(0.02)
    assert enumerated.recipients == made
    services = second.runtime.services
    assert services is not None  # and queued again, with their lists
    assert {m.id: emails(m) for m in services.queues.messages.values()} == made
