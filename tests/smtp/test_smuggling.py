"""SMTP smuggling: no bare-LF/bare-CR "end of data" can inject a second message.

Each payload hides a second transaction behind a non-CRLF end-of-data marker, then ends
the data properly. Whatever ``invalid_line_endings`` says, the result must be exactly one
reply to DATA (a rejection, or one message) — never a 250 for the smuggled MAIL FROM.
"""

from __future__ import annotations

import pytest

from bench.common.smtp_client import RawSmtpClient, Reply
from tests.smtp.conftest import StartSmtp

SMUGGLED = (b"MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@target.example>\r\n"
            b"DATA\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n")

# Every end-of-data look-alike that is not CRLF . CRLF.
VARIANTS = {
    "LF.LF": b"\n.\n",
    "LF.CRLF": b"\n.\r\n",
    "CRLF.LF": b"\r\n.\n",
    "CR.CR": b"\r.\r",
    "CR.CRLF": b"\r.\r\n",
    "CRLF.CR": b"\r\n.\r",
    "LF.CR": b"\n.\r",
    "CR.LF": b"\r.\n",
}


async def transaction(client: RawSmtpClient, payload: bytes) -> list[Reply]:
    """Send one message with ``payload`` as its data, then QUIT; every reply until close."""
    await client.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
    replies = [await client.read_reply() for _ in range(3)]
    assert [r.code for r in replies] == [250, 250, 354]
    await client.send(payload + b"\r\n.\r\nQUIT\r\n")
    after = []
    try:
        while True:
            after.append(await client.read_reply(timeout=2))
    except ConnectionError:
        pass
    return after


def payload_for(marker: bytes) -> bytes:
    return b"Subject: first\r\n\r\nfirst body" + marker + SMUGGLED


@pytest.mark.parametrize("variant", sorted(VARIANTS))
async def test_deny_mode_rejects_the_whole_data_once(start_smtp: StartSmtp, variant: str) -> None:
    env = await start_smtp()
    client = await env.session()
    replies = await transaction(client, payload_for(VARIANTS[variant]))
    assert [str(r) for r in replies] == [
        "552 5.6.0 message data must use CRLF for line endings",
        "221 2.0.0 So long, and thanks for all the fish!",
    ]
    assert env.messages == []


@pytest.mark.parametrize("variant", sorted(VARIANTS))
async def test_fix_mode_makes_exactly_one_message(start_smtp: StartSmtp, variant: str) -> None:
    env = await start_smtp(invalid_line_endings="Fix")
    client = await env.session()
    replies = await transaction(client, payload_for(VARIANTS[variant]))
    assert [r.code for r in replies] == [250, 221]
    assert len(replies[0].text.split()) == 2  # "OK ids=<one id>"
    [message] = env.messages
    assert message.recipient.email == "b@example.com"
    assert b"MAIL FROM:<evil@attacker.example>" in message.data
    # Normalised: every line ending is now CRLF.
    body = message.data
    assert body.count(b"\r") == body.count(b"\r\n") == body.count(b"\n")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
async def test_allow_mode_keeps_the_bytes_in_one_message(
    start_smtp: StartSmtp, variant: str
) -> None:
    env = await start_smtp(invalid_line_endings="Allow")
    client = await env.session()
    replies = await transaction(client, payload_for(VARIANTS[variant]))
    assert [r.code for r in replies] == [250, 221]
    [message] = env.messages
    assert message.data.endswith(SMUGGLED + b"\r\n")
    assert b"first body" in message.data


async def test_bare_lf_inside_a_header_is_rejected(start_smtp: StartSmtp) -> None:
    env = await start_smtp()
    client = await env.session()
    replies = await transaction(client, b"Subject: hi\nBcc: victim@target.example\r\n\r\nx")
    assert replies[0].code == 552
    assert env.messages == []


async def test_data_split_across_packets_at_every_position_still_ends_once(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp()
    client = await env.session()
    await client.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
    assert [(await client.read_reply()).code for _ in range(3)] == [250, 250, 354]
    data = b"Subject: slow\r\n\r\n..stuffed\r\nline.\r\n.\r\n"
    for byte in data:
        await client.send(bytes([byte]))
    reply = await client.read_reply()
    assert reply.code == 250
    assert env.messages[0].data.endswith(b"Subject: slow\r\n\r\n.stuffed\r\nline.\r\n")
