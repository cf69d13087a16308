"""Reception announces each DATA body to the spools' commit window while it reads it,
and withdraws the announcement whatever becomes of the body: handed to the spool,
refused, or left unfinished by a client that went away."""

from __future__ import annotations

import asyncio

from bench.common.smtp_client import RawSmtpClient
from kumocore.spool.commit import Arrivals, committer_for
from tests.smtp.conftest import SmtpEnv, StartSmtp


def _arrivals() -> Arrivals:
    return committer_for(asyncio.get_running_loop()).arrivals


async def _half_sent_body(env: SmtpEnv, arrivals: Arrivals) -> RawSmtpClient:
    """A client past ``354`` with part of its body sent: the body is announced."""
    client = await env.session()
    await client.command("MAIL FROM:<a@example.com>")
    await client.command("RCPT TO:<b@example.com>")
    assert (await client.command("DATA")).code == 354
    await client.send("Subject: x\r\n\r\nhalf a body\r\n")
    await asyncio.sleep(0.05)
    assert arrivals.pending == 1
    return client


async def _settled(arrivals: Arrivals) -> None:
    for _ in range(100):
        if not arrivals.pending:
            return
        await asyncio.sleep(0.01)


async def test_a_body_is_announced_while_it_is_read_and_arrives_with_its_250(
    start_smtp: StartSmtp,
) -> None:
    arrivals = _arrivals()
    client = await _half_sent_body(await start_smtp(), arrivals)
    await client.send(".\r\n")
    assert (await client.read_reply()).code == 250
    assert (arrivals.pending, arrivals.total_arrived) == (0, 1)


async def test_a_refused_body_withdraws_its_announcement(start_smtp: StartSmtp) -> None:
    env = await start_smtp()
    arrivals = _arrivals()
    client = await env.session()
    _, final = await client.send_mail("a@example.com", ["b@example.com"],
                                      "Subject: x\r\n\r\nbare\nline feed\r\n")
    assert final.code == 552
    assert (arrivals.pending, arrivals.total_arrived) == (0, 0)  # withdrawn, not handed over


async def test_a_client_that_goes_away_mid_data_withdraws_its_announcement(
    start_smtp: StartSmtp,
) -> None:
    arrivals = _arrivals()
    client = await _half_sent_body(await start_smtp(), arrivals)
    await client.close()
    await _settled(arrivals)
    assert (arrivals.pending, arrivals.total_arrived) == (0, 0)
