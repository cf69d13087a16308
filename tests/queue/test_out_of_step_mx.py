"""An MX whose replies fall out of step with the commands, that refuses the session
rather than the message, or that cannot take 8-bit mail: nothing is logged as delivered
that the MX did not take, nothing bounces for a reply about the session, and 8-bit
content goes out as RFC 6152 and 6531 ask (or, as in KumoMTA, not at all)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.common.hostile_mx import HostileMx
from tests.queue.harness import hostile_bench

EIGHT_BIT = "Subject: caf\u00e9\r\n\r\nd\u00e9j\u00e0 vu\r\n".encode()


def _mail_from_lines(mx: HostileMx) -> list[str]:
    return [c for c in mx.commands if c.upper().startswith("MAIL FROM")]


@pytest.mark.parametrize(
    ("mode", "code"),
    [
        # As KumoMTA: 400 "KumoMTA internal: failed to send message: ..."
        ("data_250", 400),  # a body sent now would go nowhere: a protocol violation
        # As KumoMTA: 400 "KumoMTA internal: failed to connect to any candidate hosts: ..."
        ("ehlo_extra", 400),  # one reply line more than EHLO asked for
        ("dot_421", 421),
        ("banner_554", 400),  # the session was refused, not the message
        ("ehlo_500", 400),
        ("dot_354", 354),  # KumoMTA: a 3xx or 503 is a protocol sync issue, transient
        ("mail_503", 503),
    ],
)
async def test_replies_about_the_session_defer_the_message_and_it_arrives_once_benign(
    make_bench: Any, mx: HostileMx, mode: str, code: int
) -> None:
    mx.mode = mode
    bench = await hostile_bench(make_bench, mx)
    for n in range(3):
        await bench.inject(f"r{n}@example.com")
    records = await bench.wait_for_records("TransientFailure", 3, timeout=20)
    assert {r["response"]["code"] for r in records} == {code}
    assert bench.log_sink.of_type("Delivery") == []
    assert bench.log_sink.of_type("Bounce") == []
    assert mx.messages == []
    mx.mode = "benign"
    await bench.wait_for_records("Delivery", 3, timeout=40)
    await bench.wait_until(lambda: bench.spooled() == 0)
    assert sorted(m.recipient for m in mx.messages) == [f"r{n}@example.com" for n in range(3)]


async def test_250_to_data_never_logs_a_delivery_for_a_body_that_was_not_sent(
    make_bench: Any, mx: HostileMx
) -> None:
    mx.mode = "data_250"
    bench = await hostile_bench(make_bench, mx)
    await bench.inject("r@example.com")
    (record,) = await bench.wait_for_records("TransientFailure", 1, timeout=20)
    assert "is no reply to DATA" in record["response"]["content"]
    assert "DATA" in mx.commands and "." not in mx.commands


async def test_a_second_reply_to_the_dot_is_not_read_as_the_next_messages_replies(
    make_bench: Any, mx: HostileMx
) -> None:
    mx.mode = "double_dot_reply"
    bench = await hostile_bench(make_bench, mx, connection_limit=1)  # one session for all
    for n in range(4):
        await bench.inject(f"r{n}@example.com")
    await bench.wait_for_records("Delivery", 4, timeout=20)
    await bench.wait_until(lambda: bench.spooled() == 0)
    # Each logged delivery is a message the MX took, each once.
    assert sorted(m.recipient for m in mx.messages) == [f"r{n}@example.com" for n in range(4)]
    assert bench.log_sink.of_type("TransientFailure") == []


async def test_a_session_the_mx_ended_while_idle_is_not_used_for_the_next_message(
    make_bench: Any, mx: HostileMx
) -> None:
    # The MX said 421 and hung up while the session waited for mail: the next message
    # goes out on a new session, without a failed attempt (RSET into a closed socket).
    mx.mode = "idle_421"
    bench = await hostile_bench(make_bench, mx, connection_limit=1, idle_timeout="10s")
    await bench.inject("r0@example.com")
    await bench.wait_for_records("Delivery", 1, timeout=20)
    await bench.wait_until(lambda: mx.open_connections == 0, timeout=5)
    await bench.inject("r1@example.com")
    await bench.wait_for_records("Delivery", 2, timeout=20)
    assert bench.log_sink.of_type("TransientFailure") == []
    assert len(mx.connections) == 2


async def test_a_refused_recipient_with_354_to_data_ends_the_data_with_a_lone_dot(
    make_bench: Any, mx: HostileMx
) -> None:
    # RFC 2920 3.1: an RSET sent now would be read as the body of an empty message.
    mx.mode = "rcpt550_data354"
    bench = await hostile_bench(make_bench, mx, rset_timeout="10s")
    await bench.inject("r@example.com")
    (record,) = await bench.wait_for_records("Bounce", 1, timeout=5)
    assert record["response"]["code"] == 550
    await bench.wait_until(lambda: "RSET" in mx.commands, timeout=5)
    assert mx.bodies == [b""]
    assert bench.log_sink.of_type("TransientFailure") == []


async def test_8bit_body_is_sent_with_body_8bitmime_to_an_mx_that_offers_it(
    make_bench: Any, mx: HostileMx
) -> None:
    bench = await hostile_bench(make_bench, mx)
    await bench.inject("r@example.com", body=EIGHT_BIT)
    await bench.inject("s@example.com")
    await bench.wait_for_records("Delivery", 2, timeout=20)
    lines = _mail_from_lines(mx)
    assert sorted(lines) == ["MAIL FROM:<a@src.test>", "MAIL FROM:<a@src.test> BODY=8BITMIME"]
    assert next(m.data for m in mx.messages if m.recipient == "r@example.com").endswith(
        EIGHT_BIT)


async def test_8bit_body_to_an_mx_without_8bitmime_bounces_before_anything_is_sent(
    make_bench: Any, mx: HostileMx
) -> None:
    mx.mode = "no_8bit"
    bench = await hostile_bench(make_bench, mx)
    await bench.inject("r@example.com", body=EIGHT_BIT)
    await bench.inject("s@example.com")
    (bounce,) = await bench.wait_for_records("Bounce", 1, timeout=20)
    assert bounce["recipient"] == "r@example.com"
    assert bounce["response"]["code"] == 554
    assert bounce["response"]["enhanced_code"] == {"class": 5, "subject": 6, "detail": 3}
    assert bounce["response"]["content"].startswith(
        "KumoMTA internal: DATA is 8bit, destination does not support 8BITMIME.")
    await bench.wait_for_records("Delivery", 1, timeout=20)
    assert [m.recipient for m in mx.messages] == ["s@example.com"]
    assert all("BODY=" not in line for line in _mail_from_lines(mx))


async def test_ignore_8bit_checks_sends_8bit_mail_anyway_without_the_parameter(
    make_bench: Any, mx: HostileMx
) -> None:
    mx.mode = "no_8bit"
    bench = await hostile_bench(make_bench, mx, ignore_8bit_checks=True)
    await bench.inject("r\u00f6@example.com", body=EIGHT_BIT)
    await bench.wait_for_records("Delivery", 1, timeout=20)
    assert _mail_from_lines(mx) == ["MAIL FROM:<a@src.test>"]


async def test_utf8_envelope_is_sent_with_smtputf8_to_an_mx_that_offers_it(
    make_bench: Any, mx: HostileMx
) -> None:
    bench = await hostile_bench(make_bench, mx)
    await bench.inject("j\u00f6rg@example.com")
    await bench.wait_for_records("Delivery", 1, timeout=20)
    assert _mail_from_lines(mx) == ["MAIL FROM:<a@src.test> SMTPUTF8"]
    assert [m.recipient for m in mx.messages] == ["j\u00f6rg@example.com"]


async def test_utf8_envelope_to_an_mx_without_smtputf8_bounces_before_anything_is_sent(
    make_bench: Any, mx: HostileMx
) -> None:
    mx.mode = "no_8bit"
    bench = await hostile_bench(make_bench, mx)
    await bench.inject("m\u00fcller@example.com")
    (bounce,) = await bench.wait_for_records("Bounce", 1, timeout=20)
    assert bounce["response"]["code"] == 554
    assert bounce["response"]["enhanced_code"] == {"class": 5, "subject": 6, "detail": 7}
    assert _mail_from_lines(mx) == [] and mx.messages == []
