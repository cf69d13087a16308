"""``prohibited_hosts`` refuses a whole MX plan, as KumoMTA does: every MX host is
resolved before the first connection, and one prohibited address anywhere in the plan
(even a backup MX's) bounces the ready queue without connecting to any host."""

from __future__ import annotations

from typing import Any

from tests.queue.harness import Bench

LOOP = '{"127.0.0.2"}'  # how the list is printed in the bounce text


def _enhanced(record: dict[str, Any]) -> str:
    code = record["response"]["enhanced_code"]
    return f"{code['class']}.{code['subject']}.{code['detail']}"


async def test_a_prohibited_backup_mx_bounces_before_the_reachable_primary_is_tried(
    make_bench: Any,
) -> None:
    bench: Bench = await make_bench(path={"prohibited_hosts": ["127.0.0.2"]})
    bench.dns.set_records("mx2.example.com", "A", ["127.0.0.2"])  # mx1 is the live sink
    await bench.inject("r@example.com")
    (bounce,) = await bench.wait_for_records("Bounce", 1)
    assert bounce["response"]["code"] == 550 and _enhanced(bounce) == "5.4.4"
    assert bounce["response"]["content"] == (
        f"mx2.example.com/127.0.0.2 is on the list of prohibited_hosts {LOOP}")
    assert bench.sink.state.connections == 0  # refused before connecting anywhere
    assert bench.log_sink.of_type("Delivery") == []


async def test_a_prohibited_address_among_a_hosts_addresses_bounces_every_queued_message(
    make_bench: Any,
) -> None:
    bench: Bench = await make_bench(path={"prohibited_hosts": ["127.0.0.2"]})
    bench.dns.set_records("mx1.example.com", "A", ["127.0.0.1", "127.0.0.2"])
    await bench.inject("a@example.com")
    await bench.inject("b@example.com")
    bounces = await bench.wait_for_records("Bounce", 2)
    assert {b["recipient"] for b in bounces} == {"a@example.com", "b@example.com"}
    assert all(b["response"]["content"].startswith("mx1.example.com/127.0.0.2 ")
               for b in bounces)
    assert bench.sink.state.connections == 0
    # Each leaves the spool once its record is written (just after the record arrives).
    await bench.wait_until(lambda: bench.spooled() == 0)


async def test_prohibited_is_checked_before_skip_hosts_so_a_skipped_loop_still_bounces(
    make_bench: Any,
) -> None:
    bench: Bench = await make_bench(
        path={"prohibited_hosts": ["127.0.0.2"], "skip_hosts": ["127.0.0.2"]})
    bench.dns.set_records("mx2.example.com", "A", ["127.0.0.2"])
    await bench.inject("r@example.com")
    (bounce,) = await bench.wait_for_records("Bounce", 1)
    assert _enhanced(bounce) == "5.4.4"
    assert bench.sink.state.connections == 0


async def test_a_skipped_backup_mx_is_left_out_and_the_primary_delivers(
    make_bench: Any,
) -> None:
    bench: Bench = await make_bench(path={"skip_hosts": ["127.0.0.2"]})
    bench.dns.set_records("mx2.example.com", "A", ["127.0.0.2"])
    await bench.inject("r@example.com")
    (delivery,) = await bench.wait_for_records("Delivery", 1)
    assert delivery["peer_address"]["addr"] == "127.0.0.1"
    assert bench.log_sink.of_type("Bounce") == []
