"""``enable_rset`` (KumoMTA's semantics, read from its SMTP client): never an RSET before a
connection's first transaction; before each later one when ``true`` (the default); when
``false``, only after a transaction that failed. Checked on the commands a real MX
received, pipelined and not."""

from __future__ import annotations

from typing import Any

import pytest

from bench.common.hostile_mx import HostileMx
from tests.queue.harness import Bench

RECIPIENTS = ["a@example.com", "b@example.com", "permfail@example.com", "d@example.com"]


async def _deliver(make_bench: Any, mx: HostileMx, **path: Any) -> Bench:
    bench: Bench = await make_bench(
        path={"smtp_port": mx.port, "connection_limit": 1, "enable_tls": "Disabled",
              "idle_timeout": 1.0, **path},
        queue={"retry_interval": "1h"})
    for recipient in RECIPIENTS:
        await bench.inject(recipient)
    await bench.wait_for_records("Delivery", 3, timeout=20)
    await bench.wait_for_records("Bounce", 1, timeout=20)
    await bench.wait_until(lambda: "QUIT" in mx.commands, timeout=20)
    return bench


def verbs(mx: HostileMx) -> list[str]:
    return [line.split(" ", 1)[0].split(":", 1)[0].upper() for line in mx.commands]


# One transaction: MAIL, RCPT, DATA (the body is not a command). Without pipelining, a
# refused RCPT ends the refused one before DATA.
TX = ["MAIL", "RCPT", "DATA"]


def refused(pipelining: bool) -> list[str]:
    return TX if pipelining else ["MAIL", "RCPT"]


def offered(mx: HostileMx) -> list[str]:
    """The recipients in the order the MX saw them: routing runs several workers, so the
    order of delivery is not the order of injection, and the expectation follows it."""
    rcpts = [line.split(":", 1)[1] for line in mx.commands if line.upper().startswith("RCPT")]
    return [rcpt.strip().split(">", 1)[0].lstrip("<").lower() for rcpt in rcpts]


def expected(mx: HostileMx, pipelining: bool, *, rset_between: bool) -> list[str]:
    """EHLO, then the transactions in the MX's order: a refused one is reset at once;
    with ``rset_between`` every later transaction is preceded by an RSET (one only, when
    the one before was refused and reset already)."""
    verbs_seen = ["EHLO"]
    after_reset = True  # nothing to reset before a connection's first transaction
    for recipient in offered(mx):
        if rset_between and not after_reset:
            verbs_seen.append("RSET")
        failed = recipient.startswith("permfail")
        verbs_seen += refused(pipelining) if failed else TX
        if failed:
            verbs_seen.append("RSET")
        after_reset = failed
    return [*verbs_seen, "QUIT"]


def test_the_expectation_in_injection_order_is_the_documented_sequence() -> None:
    mx = HostileMx("benign")
    mx.commands = [f"RCPT TO:<{r}>" for r in RECIPIENTS]
    assert expected(mx, True, rset_between=True) == [
        "EHLO", *TX, "RSET", *TX, "RSET", *TX, "RSET", *TX, "QUIT"]
    assert expected(mx, False, rset_between=False) == [
        "EHLO", *TX, *TX, "MAIL", "RCPT", "RSET", *TX, "QUIT"]


@pytest.mark.parametrize("pipelining", [True, False])
async def test_rset_before_every_later_transaction_by_default(
    make_bench: Any, mx: HostileMx, pipelining: bool,
) -> None:
    await _deliver(make_bench, mx, enable_pipelining=pipelining)
    assert sorted(offered(mx)) == sorted(RECIPIENTS)
    # after the refused RCPT, kumocore resets at once; the next transaction needs no other
    assert verbs(mx) == expected(mx, pipelining, rset_between=True)


@pytest.mark.parametrize("pipelining", [True, False])
async def test_enable_rset_false_resets_only_after_a_failed_transaction(
    make_bench: Any, mx: HostileMx, pipelining: bool,
) -> None:
    await _deliver(make_bench, mx, enable_rset=False, enable_pipelining=pipelining)
    assert sorted(offered(mx)) == sorted(RECIPIENTS)
    assert verbs(mx) == expected(mx, pipelining, rset_between=False)
    assert verbs(mx).count("RSET") == 1
    assert sorted(m.recipient for m in mx.messages) == [
        "a@example.com", "b@example.com", "d@example.com"]


async def test_an_mx_that_penalises_rset_gets_mail_only_with_enable_rset_false(
    make_bench: Any, mx: HostileMx,
) -> None:
    # Postfix under load shedding hangs up on RSET: with the default, the second message
    # of each connection is deferred (never offered); with false, all are delivered.
    mx.refuse_rset = True
    bench: Bench = await make_bench(
        path={"smtp_port": mx.port, "connection_limit": 1, "enable_tls": "Disabled"},
        queue={"retry_interval": "1h"})
    await bench.inject("a@example.com")
    await bench.inject("b@example.com")
    [deferred] = await bench.wait_for_records("TransientFailure", 1, timeout=20)
    assert deferred["recipient"] == "b@example.com"
    assert deferred["response"]["code"] == 421  # the MX's reply to RSET, as it came
    assert deferred["response"]["content"] == "mx.hostile.test Error: too many errors"
    assert [m.recipient for m in mx.messages] == ["a@example.com"]

    mx.commands.clear()
    bench = await make_bench(
        path={"smtp_port": mx.port, "connection_limit": 1, "enable_tls": "Disabled",
              "enable_rset": False},
        queue={"retry_interval": "1h"})
    await bench.inject("c@example.com")
    await bench.inject("d@example.com")
    await bench.wait_for_records("Delivery", 2, timeout=20)
    assert "RSET" not in verbs(mx)
