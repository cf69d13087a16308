"""A 20 MiB DSN to a log_oob domain does not hold the event loop (every other client of
the listener) for its parse: only its status part is parsed, not the returned message."""

from __future__ import annotations

from tests.smtp.conftest import StartSmtp
from tests.smtp.test_large_reports import dsn
from tests.smtp.test_reports import DOMAINS, UNTRUSTED
from tests.support.ticker import LoopTicker

MIB = 1024 * 1024
#: The bound the reliability bench holds another client's NOOP round trip to.
MAX_STALL = 0.1


async def test_a_20_mib_dsn_to_five_recipients_holds_the_loop_less_than_100_ms(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp(domains=DOMAINS, max_message_size=32 * MIB)
    body = dsn(5, 20 * MIB).encode()
    sender = await env.session(UNTRUSTED)
    recipients = [f"bounce{n}@bounces.example" for n in range(5)]
    async with LoopTicker() as ticker:
        _, final = await sender.send_mail("", recipients, body)
    assert final.code == 250
    assert len(await env.reception.records("OOB")) == 5 * 5
    # Parsing the whole report on a thread held the loop 120 ms: the stdlib parser splits
    # and decodes all 20 MiB in single C calls that keep the GIL.
    assert ticker.longest < MAX_STALL, f"the loop stalled {ticker.longest * 1000:.0f} ms"
