"""A large DSN on a log_oob domain is parsed once per transaction, off the event loop,
and one report yields at most MAX_REPORT_RECIPIENTS OOB records per message."""

from __future__ import annotations

from kumocore.reports.rfc3464 import MAX_REPORT_RECIPIENTS
from tests.smtp.conftest import StartSmtp
from tests.smtp.test_reports import DOMAINS, UNTRUSTED
from tests.support.ticker import LoopTicker


def dsn(failed: int, returned_bytes: int) -> str:
    blocks = "".join(
        f"Final-Recipient: rfc822; gone{n}@remote.example\r\nAction: failed\r\n"
        "Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n"
        for n in range(failed))
    returned = ("X-Filler: " + "f" * 68 + "\r\n") * (returned_bytes // 80)
    return (
        "From: mailer-daemon@mx.remote.example\r\nTo: bounce@bounces.example\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.remote.example\r\n\r\n" + blocks +
        "--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n" + returned +
        "Subject: the original\r\n\r\n--b1--\r\n")


async def test_one_report_gives_at_most_the_documented_number_of_oob_records(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp(domains=DOMAINS)
    client = await env.session(UNTRUSTED)
    recipients = [f"bounce{n}@bounces.example" for n in range(3)]
    _, final = await client.send_mail("", recipients, dsn(MAX_REPORT_RECIPIENTS * 5, 0))
    assert final.code == 250
    records = await env.reception.records("OOB")
    assert len(records) == 3 * MAX_REPORT_RECIPIENTS


async def test_a_large_dsn_to_many_recipients_does_not_stall_other_clients(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp(domains=DOMAINS)
    body = dsn(5, 16 * 1024 * 1024)
    sender = await env.session(UNTRUSTED)
    recipients = [f"bounce{n}@bounces.example" for n in range(10)]
    # The listener runs on this loop: how late a short sleep wakes is the stall every
    # other client of the listener would see.
    async with LoopTicker() as ticker:
        _, final = await sender.send_mail("", recipients, body)
    assert final.code == 250
    assert len(await env.reception.records("OOB")) == 10 * 5
    # Parsed 10 times on the loop this stalled for seconds; once, on a thread: no stall.
    worst = ticker.longest
    assert worst < 1.0, f"the event loop stalled for {worst:.2f} s"  # 3 s before the fix
