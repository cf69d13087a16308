"""A client's widest transaction under ``batch_handling = 'BatchByDomain'``:
``max_recipients_per_message`` (1,024) recipients of 1,024 distinct domains, so 1,024
messages of one recipient each from one DATA, plus one address per domain in another
case (``A@Example.COM`` beside ``b@example.com``: one batch, domains compared lowercased).

Measured while it runs: the longest time the event loop stood still and a well-behaved
client's transactions (as tests/smtp/test_adversary_batch.py does for one domain).
"""

from __future__ import annotations

import asyncio
import time

from kumocore import hookimpl
from kumocore.mail.message import Message
from tests.smtp.conftest import StartSmtp
from tests.support.adversary import probe_while, rss_mib
from tests.support.ticker import LoopTicker

RECIPIENTS = 1024  # the default max_recipients_per_message
DOMAINS = [f"d{n}.example" for n in range(RECIPIENTS)]


class Received:
    def __init__(self) -> None:
        self.sizes: list[int] = []

    @hookimpl
    def kumo_smtp_server_message_received(self, message: Message) -> None:
        self.sizes.append(len(message.recipient_list()))


async def test_a_transaction_of_1024_domains_makes_1024_messages_without_stalling_others(
    start_smtp: StartSmtp,
) -> None:
    policy = Received()
    local = {domain: {"relay_to": True} for domain in DOMAINS}
    env = await start_smtp(policy, domains=local, batch_handling="BatchByDomain")
    attacker = await env.session("127.0.0.5")
    rcpts = [f"user@{domain}" for domain in DOMAINS]
    before = rss_mib()

    async def attack() -> tuple[str, float]:
        started = time.perf_counter()
        await attacker.command("MAIL FROM:<a@example.com>")
        attacker.writer.write(b"".join(f"RCPT TO:<{r}>\r\n".encode() for r in rcpts))
        replies = [await attacker.read_reply() for _ in range(RECIPIENTS)]
        assert [r.code for r in replies] == [250] * RECIPIENTS
        assert (await attacker.command("DATA")).code == 354
        await attacker.send(b"Subject: wide\r\n\r\n" + (b"x" * 78 + b"\r\n") * 1300 + b".\r\n")
        final = await attacker.read_reply(timeout=120)
        return str(final), time.perf_counter() - started

    async with LoopTicker() as ticker:
        task = asyncio.ensure_future(attack())
        probes = await probe_while(env, task)
    final, elapsed = task.result()
    grown = rss_mib() - before
    # One id per message in the reply, space separated on one line, as KumoMTA's.
    assert final.startswith("250 OK ids="), final[:80]
    assert len(set(final.removeprefix("250 OK ids=").split())) == RECIPIENTS
    wide = [m for m in env.messages if m.recipient.domain in local]
    assert sorted(m.recipient.email for m in wide) == sorted(rcpts)
    assert policy.sizes.count(1) >= RECIPIENTS
    print(
        f"1024 domains: longest stall {ticker.longest * 1000:.1f} ms, attack "
        f"{elapsed:.3f} s, slowest probe {max(probes) * 1000:.1f} ms, rss +{grown:.1f} MiB"
    )
    assert ticker.longest < 0.2, (ticker.longest, elapsed, max(probes))
    assert max(probes) < 1.0, probes


async def test_mixed_case_domains_of_one_site_make_one_batch(start_smtp: StartSmtp) -> None:
    policy = Received()
    env = await start_smtp(
        policy, domains={"example.com": {"relay_to": True}}, batch_handling="BatchByDomain"
    )
    client = await env.session("127.0.0.5")
    _, final = await client.send_mail(
        "s@src.test",
        ["A@Example.COM", "b@example.com", "A@Example.COM"],
        "Subject: case\r\n\r\nhi\r\n",
    )
    assert final.code == 250, final
    (message,) = env.messages
    # A duplicate RCPT stays (KumoMTA does not remove it either).
    assert [r.email.lower() for r in message.recipients] == [
        "a@example.com",
        "b@example.com",
        "a@example.com",
    ]
    assert policy.sizes == [3]
