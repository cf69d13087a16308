"""The header block is parsed once per transaction, and a block over
``max_header_block_size`` is refused with 552 5.3.4 before anything parses it."""

from __future__ import annotations

import time

from kumocore import hookimpl
from kumocore.mail.message import Message
from tests.smtp.conftest import StartSmtp

RECIPIENTS = [f"r{n}@example.com" for n in range(200)]


class TenantFromHeader:
    """The seed policy's habit: read X-Tenant of every message."""

    def __init__(self) -> None:
        self.tenants: list[str | None] = []

    @hookimpl
    def kumo_smtp_server_message_received(self, message: Message) -> None:
        self.tenants.append(message.get_first_named_header_value("X-Tenant"))


async def test_a_large_header_block_is_parsed_once_for_all_recipients(
    start_smtp: StartSmtp,
) -> None:
    policy = TenantFromHeader()
    env = await start_smtp(policy)
    # ~88 KB of tiny header lines (just under the limit): ~50 ms to parse, per parse.
    headers = "".join(f"a{n}:b\r\n" for n in range(10_000)) + "X-Tenant: blue\r\n"
    client = await env.session()
    started = time.monotonic()
    _, final = await client.send_mail("a@example.com", RECIPIENTS, headers + "\r\nbody\r\n")
    elapsed = time.monotonic() - started
    assert final.code == 250
    assert policy.tenants == ["blue"] * len(RECIPIENTS)
    # Once per recipient this took ~10 s; once per transaction it is well under 1 s.
    assert elapsed < 3.0, f"{elapsed:.1f} s for 200 recipients"


async def test_a_header_block_over_the_limit_is_refused_with_552(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp(max_header_block_size="64 KiB")
    client = await env.session()
    header_only = "".join(f"X-H{n}: {'v' * 60}\r\n" for n in range(2_000))  # 140 KB, no body
    _, final = await client.send_mail("a@example.com", ["b@example.com"], header_only)
    assert str(final).startswith("552 5.3.4 header block too big")
    assert env.messages == []
    _, final = await client.send_mail("a@example.com", ["b@example.com"],
                                      "Subject: ok\r\n\r\nbody\r\n")
    assert final.code == 250
