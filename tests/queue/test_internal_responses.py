"""The responses kumocore writes itself (no peer said them) are KumoMTA's: code,
enhanced code and text, as log parsers, bounce rules and automation rules expect them."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from bench.common.serve_process import free_port
from kumocore.mail import internal_responses as internal
from kumocore.queue.admin import parse_rule
from tests.queue.harness import Bench


def _enhanced(record: dict[str, Any]) -> str | None:
    code = record["response"]["enhanced_code"]
    return None if code is None else f"{code['class']}.{code['subject']}.{code['detail']}"


async def test_refused_connections_give_one_400_listing_every_candidate_host(
    make_bench: Any,
) -> None:
    port = free_port()
    bench: Bench = await make_bench(path={"smtp_port": port}, queue={"retry_interval": "1h"})
    await bench.inject("r@example.com")
    (record,) = await bench.wait_for_records("TransientFailure", 1)
    assert record["response"]["code"] == 400 and _enhanced(record) is None
    content = record["response"]["content"]
    prefix = "KumoMTA internal: failed to connect to any candidate hosts: "
    assert content.startswith(prefix)
    hosts = content[len(prefix):].split(", connect to ")
    assert hosts[0].startswith(f"connect to mx1.example.com [127.0.0.1]:{port}: connection failed")
    assert hosts[1].startswith(f"mx2.example.com [127.0.0.1]:{port}: connection failed")


async def test_a_connection_failure_stays_short_however_long_the_refusals(
    make_bench: Any,
) -> None:
    # Both MX hosts refuse with the longest greeting the reply reader takes (100 lines of
    # about 4 KiB): each host's part of the record is cut, not 400 KB per message.
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = "x" * 4000
        writer.write("".join(f"554-{line}\r\n" for _ in range(99)).encode()
                     + b"554 5.3.2 go away\r\n")  # fmt: skip
        await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        bench: Bench = await make_bench(path={"smtp_port": port},
                                        queue={"retry_interval": "1h"})  # fmt: skip
        await bench.inject("r@example.com")
        (record,) = await bench.wait_for_records("TransientFailure", 1)
    finally:
        server.close()
    content = record["response"]["content"]
    assert content.startswith("KumoMTA internal: failed to connect to any candidate hosts: "
                              f"connect to mx1.example.com [127.0.0.1]:{port}: ")
    assert "554" in content and content.count("...") == 2
    assert len(content) < 2 * internal.MAX_HOST_REASON + 100


def test_a_connection_failure_lists_at_most_sixteen_hosts() -> None:
    response = internal.connect_failed([f"connect to mx{n}: refused" for n in range(40)])
    assert response.content.endswith("connect to mx15: refused, and 24 more hosts")


async def test_an_mx_only_of_skip_hosts_defers_with_kumomtas_internal_451(
    make_bench: Any,
) -> None:
    bench: Bench = await make_bench(path={"skip_hosts": ["127.0.0.0/8"]},
                                    queue={"retry_interval": "1h"})
    await bench.inject("r@example.com")
    (record,) = await bench.wait_for_records("TransientFailure", 1)
    assert record["response"]["code"] == 451 and _enhanced(record) == "4.4.4"
    assert record["response"]["content"] == (
        "KumoMTA internal: MX consisted solely of hosts on the skip_hosts list")
    assert bench.log_sink.of_type("Bounce") == []


async def test_a_prohibited_mx_address_bounces_naming_the_address_and_the_list(
    make_bench: Any,
) -> None:
    bench: Bench = await make_bench(path={"prohibited_hosts": ["127.0.0.0/8", "::1"]})
    await bench.inject("user@looped.example")
    (bounce,) = await bench.wait_for_records("Bounce", 1)
    assert bounce["response"]["code"] == 550 and _enhanced(bounce) == "5.4.4"
    assert bounce["response"]["content"] == (
        'mx1.example.com/127.0.0.1 is on the list of prohibited_hosts {"127.0.0.0/8", "::1"}')


async def test_a_null_mx_bounces_with_kumomtas_556_text(make_bench: Any) -> None:
    bench: Bench = await make_bench()
    await bench.inject("user@nullmx.example")
    (bounce,) = await bench.wait_for_records("Bounce", 1)
    assert bounce["response"]["code"] == 556 and _enhanced(bounce) == "5.1.10"
    assert bounce["response"]["content"] == "Recipient address has a null MX"


async def test_an_mx_lookup_failure_says_the_queue_could_not_be_resolved(
    make_bench: Any,
) -> None:
    bench: Bench = await make_bench(queue={"retry_interval": "1h"})
    bench.dns.set_servfail(True, names=["example.com"])
    await bench.inject("r@example.com")
    (record,) = await bench.wait_for_records("TransientFailure", 1)
    assert record["response"]["code"] == 451 and _enhanced(record) == "4.4.4"
    assert record["response"]["content"].startswith(
        "failed to resolve queue example.com: MX lookup for example.com: ")


async def test_an_undefined_egress_pool_says_the_queue_could_not_be_resolved(
    make_bench: Any,
) -> None:
    bench: Bench = await make_bench(queue={"egress_pool": "missing", "retry_interval": "1h"})
    await bench.inject("r@example.com")
    (record,) = await bench.wait_for_records("TransientFailure", 1)
    assert record["response"]["code"] == 451 and _enhanced(record) == "4.4.4"
    assert record["response"]["content"] == (
        "failed to resolve queue example.com: egress pool 'missing' is not defined")


async def test_an_admin_bounce_is_551_administrator_bounced_with_reason(
    make_bench: Any,
) -> None:
    bench: Bench = await make_bench(queue={"egress_pool": "nowhere", "retry_interval": "1h"})
    bench.queues.apply_bounce_rule(parse_rule({"domain": "example.com", "reason": "purge"}))
    await bench.inject("late@example.com")
    (record,) = await bench.wait_for_records("AdminBounce", 1)
    assert record["response"]["code"] == 551 and _enhanced(record) == "5.7.1"
    assert record["response"]["content"] == "Administrator bounced with reason: purge"


async def test_an_admin_bounce_with_suppress_logging_bounces_without_a_record(
    make_bench: Any,
) -> None:
    # KumoMTA's suppress_logging: the matching messages are bounced, no AdminBounce logged.
    bench: Bench = await make_bench(queue={"egress_pool": "nowhere", "retry_interval": "1h"})
    bench.queues.apply_bounce_rule(parse_rule(
        {"domain": "example.com", "reason": "quiet", "suppress_logging": True}))
    bench.queues.apply_bounce_rule(parse_rule({"domain": "loud.example", "reason": "loud"}))
    await bench.inject("quiet@example.com")
    await bench.inject("late@loud.example")
    (record,) = await bench.wait_for_records("AdminBounce", 1)
    assert record["recipient"] == "late@loud.example"
    assert [r["recipient"] for r in bench.log_sink.of_type("AdminBounce")] == [
        "late@loud.example"]
    assert bench.queues.admin.bounces and all(
        sum(rule.bounced.values()) == 1 for rule in bench.queues.admin.bounces.values())


async def test_expiry_past_max_age_names_the_delayed_age_and_max_age(make_bench: Any) -> None:
    bench: Bench = await make_bench(
        path={"smtp_port": free_port()},
        # The first retry (5 s, jitter ±125 ms) is past max_age however late the attempt
        # ran: a 1 s interval could leave the second retry due just before 2 s, and the
        # message then expires when it comes due, with the other text (expired_due).
        queue={"max_age": "2s", "retry_interval": "5s", "max_retry_interval": "5s"})
    await bench.inject("r@example.com")
    (record,) = await bench.wait_for_records("Expiration", 1, timeout=15)
    assert record["response"]["code"] == 551 and _enhanced(record) == "5.4.7"
    # humantime's form leaves out the units that are zero: "2s 284us", "1s 5ms 3us".
    assert re.fullmatch(r"Next delivery time would be \d+(s|ms|us)( \d+(ms|us))* after "
                        r"creation, which exceeds max_age=2s", record["response"]["content"])


def test_durations_and_times_print_as_kumomta_prints_them() -> None:
    assert internal.human_duration(0) == "0s"
    assert internal.human_duration(1.5) == "1s 500ms"
    assert internal.human_duration(7 * 86400 + 3661) == "7days 1h 1m 1s"
    assert internal.human_duration(86400) == "1day"
    assert internal.iso_duration(3600) == "PT3600S"
    assert internal.iso_duration(1.25) == "PT1.25S"
    assert internal.iso_duration(0) == "P0D"
    assert internal.utc_time(0) == "1970-01-01 00:00:00 UTC"
    assert internal.utc_time(1.5) == "1970-01-01 00:00:01.500 UTC"
    assert internal.utc_time(1.000001) == "1970-01-01 00:00:01.000001 UTC"


def test_internal_responses_carry_the_prefix_automation_rules_look_for() -> None:
    assert internal.connect_failed(["a", "b"]).to_single_line() == (
        "400 KumoMTA internal: failed to connect to any candidate hosts: a, b")
    assert internal.EIGHT_BIT_BODY.content.startswith(internal.INTERNAL_PREFIX)
    assert internal.no_sources("q@d", "p").to_single_line() == (
        "451 4.4.4 KumoMTA internal: no sources available for q@d pool=`p`")
    # Not internal in KumoMTA either: said for the destination, matched by every rule.
    assert not internal.null_mx().content.startswith(internal.INTERNAL_PREFIX)


async def test_a_rebind_is_logged_as_rebound_from_the_old_to_the_new_queue(
    make_bench: Any,
) -> None:
    from kumocore.config import QueueConfig
    from kumocore.mail.message import Message
    from kumocore.queue.rebind import parse_rebind, rebind

    bench: Bench = await make_bench(queue={"egress_pool": "nowhere", "retry_interval": "1h"})
    await bench.inject("r@example.com")
    await bench.wait_for_records("TransientFailure", 1)  # now waiting in the scheduler

    async def resolve(message: Message) -> tuple[str, QueueConfig]:
        return "smarthost.test", QueueConfig.from_options({"retry_interval": "1h"})

    request = parse_rebind({"domain": "example.com", "reason": "via smarthost",
                            "data": {"queue": "smarthost.test"}})
    assert await rebind(bench.queues, request, resolve) == {"moved": 1, "flushed": 0}
    (record,) = await bench.wait_for_records("AdminRebind", 1)
    assert record["response"]["code"] == 250 and _enhanced(record) is None
    assert record["response"]["content"] == (
        "Rebound from example.com to smarthost.test: via smarthost")


def test_timeouts_print_as_rust_prints_a_duration_as_kumomta_does() -> None:
    assert internal.debug_duration(300) == "300s"  # not humantime's 5m
    assert internal.debug_duration(1.5) == "1.5s"
    assert internal.debug_duration(0.25) == "250ms"
    assert internal.debug_duration(0.0015) == "1.5ms"
    assert internal.debug_duration(0) == "0ns"
    assert internal.send_timed_out("q", "mx [192.0.2.1]", 60, "DATA").content.endswith(
        "Timed Out waiting 60s for response to DATA")
    assert internal.PAYLOAD_TIMED_OUT.to_single_line() == (
        "400 KumoMTA internal: failed to send message: Timed Out sending message payload data")
