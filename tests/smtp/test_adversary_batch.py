"""The largest batch a client can make: ``max_recipients_per_message`` (1,024) recipients
of one domain under ``batch_handling = 'BatchByDomain'``, as one message.

The batch is one message, one policy event, one spool record listing 1,024 addresses and
one Reception record listing them too. What other clients see meanwhile is measured: the
longest time the event loop stood still, and a well-behaved client's transactions.
"""

from __future__ import annotations

import asyncio
import time

import orjson

from kumocore import hookimpl
from kumocore.mail.message import Message
from tests.smtp.conftest import StartSmtp
from tests.support.adversary import probe_while
from tests.support.ticker import LoopTicker

RECIPIENTS = 1024  # the default max_recipients_per_message
LOCAL = {"example.com": {"relay_to": True}}


class Received:
    def __init__(self) -> None:
        self.sizes: list[int] = []

    @hookimpl
    def kumo_smtp_server_message_received(self, message: Message) -> None:
        self.sizes.append(len(message.recipient_list()))


async def test_a_full_batch_is_one_message_and_does_not_stall_other_clients(
    start_smtp: StartSmtp,
) -> None:
    policy = Received()
    env = await start_smtp(policy, domains=LOCAL, batch_handling="BatchByDomain")
    attacker = await env.session("127.0.0.5")
    rcpts = [f"r{n}@example.com" for n in range(RECIPIENTS)]

    async def attack() -> tuple[str, float]:
        started = time.perf_counter()
        await attacker.command("MAIL FROM:<a@example.com>")
        # One more than the limit: refused (4.5.3), the others make the batch.
        attacker.writer.write(
            b"".join(f"RCPT TO:<{r}>\r\n".encode() for r in [*rcpts, "over@example.com"])
        )
        replies = [await attacker.read_reply() for _ in range(RECIPIENTS + 1)]
        assert [r.code for r in replies[:-1]] == [250] * RECIPIENTS
        assert str(replies[-1]).endswith(" 4.5.3 too many recipients")
        assert (await attacker.command("DATA")).code == 354
        await attacker.send(b"Subject: many\r\n\r\n" + (b"x" * 78 + b"\r\n") * 1300 + b".\r\n")
        final = await attacker.read_reply(timeout=60)
        return str(final), time.perf_counter() - started

    async with LoopTicker() as ticker:
        task = asyncio.ensure_future(attack())
        probes = await probe_while(env, task)
    final, elapsed = task.result()
    assert final.startswith("250 OK ids=") and len(final.split()) == 3, final
    batch = [m for m in env.messages if m.recipient.email == "r0@example.com"]
    assert len(batch) == 1
    [message] = batch
    assert [r.email for r in message.recipients] == rcpts
    assert policy.sizes.count(RECIPIENTS) == 1
    record = orjson.loads(env.reception.meta_spool.items[message.id])
    assert record["recipient"] == rcpts
    await env.reception.records("Reception")
    [reception] = env.reception.node.log_sink.parsed("Reception", id=message.id)
    assert reception["recipient"] == rcpts
    # Measured: the loop's longest stall 3-4 ms, the whole attack 0.06 s, probes <30 ms.
    assert ticker.longest < 0.1, (ticker.longest, elapsed, max(probes))
    assert max(probes) < 1.0, probes
    print(
        f"batch of {RECIPIENTS}: longest stall {ticker.longest * 1000:.1f} ms, "
        f"attack {elapsed:.3f} s, slowest probe {max(probes) * 1000:.1f} ms"
    )
