"""An MX that refuses the RSET kumocore sends before a later transaction: as in KumoMTA,
the message gets the MX's reply as it came (so a 5xx bounces it, a 4xx defers it). The
session goes on when nothing followed the RSET (no pipelining), as KumoMTA's does; after
a pipelined RSET kumocore drops it (the MAIL/RCPT/DATA behind it may have opened a
transaction)."""

from __future__ import annotations

from typing import Any

from bench.common.hostile_mx import HostileMx
from tests.queue.harness import Bench


async def _bench(make_bench: Any, mx: HostileMx, *, pipelining: bool) -> Bench:
    bench: Bench = await make_bench(
        path={"smtp_port": mx.port, "connection_limit": 1, "enable_tls": "Disabled",
              "idle_timeout": 1.0, "enable_pipelining": pipelining},
        queue={"retry_interval": "1h"})
    return bench


def _enhanced(record: dict[str, Any]) -> str:
    code = record["response"]["enhanced_code"]
    return f"{code['class']}.{code['subject']}.{code['detail']}"


async def test_a_5xx_to_rset_bounces_the_message_with_the_mx_reply_and_keeps_the_session(
    make_bench: Any, mx: HostileMx,
) -> None:
    mx.rset_reply = "554 5.5.1 RSET not welcome here"
    bench = await _bench(make_bench, mx, pipelining=False)
    for user in ("a", "b", "c"):
        await bench.inject(f"{user}@example.com")
    (delivered,) = await bench.wait_for_records("Delivery", 1, timeout=20)
    bounces = await bench.wait_for_records("Bounce", 2, timeout=20)
    for bounce in bounces:
        assert bounce["response"]["code"] == 554 and _enhanced(bounce) == "5.5.1"
        assert bounce["response"]["content"] == "RSET not welcome here"
        assert bounce["response"]["command"].startswith("RSET")
    assert [m.recipient for m in mx.messages] == [delivered["recipient"]]
    # Nothing but the RSET was sent for the refused messages, over the one session.
    assert len(mx.connections) == 1
    verbs = [line.split(":", 1)[0].split(" ", 1)[0].upper() for line in mx.commands]
    assert verbs == ["EHLO", "MAIL", "RCPT", "DATA", "RSET", "RSET"]
    assert bench.log_sink.of_type("TransientFailure") == []


async def test_a_4xx_to_a_pipelined_rset_defers_the_message_and_drops_the_session(
    make_bench: Any, mx: HostileMx,
) -> None:
    mx.rset_reply = "451 4.3.2 not now"
    bench = await _bench(make_bench, mx, pipelining=True)
    await bench.inject("a@example.com")
    await bench.inject("b@example.com")
    (delivered,) = await bench.wait_for_records("Delivery", 1, timeout=20)
    (deferred,) = await bench.wait_for_records("TransientFailure", 1, timeout=20)
    assert deferred["recipient"] != delivered["recipient"]
    assert deferred["response"]["code"] == 451 and _enhanced(deferred) == "4.3.2"
    assert deferred["response"]["content"] == "not now"
    assert [m.recipient for m in mx.messages] == [delivered["recipient"]]
    await bench.wait_until(lambda: mx.open_connections == 0)
    assert "QUIT" not in mx.commands  # aborted, not closed politely
    # Kept for a later attempt; the delivered one leaves the spool just after its record,
    # so under load the count is 2 for a moment (it stays 2, or drops to 0, only if wrong).
    await bench.wait_until(lambda: bench.spooled() == 1)
