"""``enable_rset`` (KumoMTA's semantics, read from its SMTP client): never an RSET before a
connection's first transaction; before each later one when ``true`` (the default); when
``false``, only after a transaction that failed. Checked on the commands a real MX
received, pipelined and not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bench.common.hostile_mx import HostileMx
from tests.queue.harness import Bench

RECIPIENTS = ["a@example.com", "b@example.com", "permfail@example.com", "d@example.com"]


@pytest.fixture
async def mx() -> AsyncIterator[HostileMx]:
    async with HostileMx("benign") as server:
        yield server


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


@pytest.mark.parametrize("pipelining", [True, False])
async def test_rset_before_every_later_transaction_by_default(
    make_bench: Any, mx: HostileMx, pipelining: bool,
) -> None:
    await _deliver(make_bench, mx, enable_pipelining=pipelining)
    # after the refused RCPT, kumocore resets at once; the next transaction needs no other
    assert verbs(mx) == ["EHLO", *TX, "RSET", *TX, "RSET", *refused(pipelining), "RSET",
                         *TX, "QUIT"]


@pytest.mark.parametrize("pipelining", [True, False])
async def test_enable_rset_false_resets_only_after_a_failed_transaction(
    make_bench: Any, mx: HostileMx, pipelining: bool,
) -> None:
    await _deliver(make_bench, mx, enable_rset=False, enable_pipelining=pipelining)
    assert verbs(mx) == ["EHLO", *TX, *TX, *refused(pipelining), "RSET", *TX, "QUIT"]
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
    assert deferred["response"]["code"] == 421
    assert "refused RSET" in deferred["response"]["content"]
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
