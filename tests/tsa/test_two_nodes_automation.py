"""Traffic shaping automation across two ``kumocore serve`` nodes and one real Redis.

The receiver (a sink on 127.0.0.1) answers ``421 4.7.28 ... rate limited`` for some
recipients. A rule in the shaping file turns three such answers into
``SetConfig max_message_rate`` for the path; node A sees the answers, and both nodes'
egress to the site must slow to that rate — measured at the sink — and speed up again when
the action expires. A second rule suspends the path on a ``[TS04]`` answer: neither node
delivers while it holds, and cancelling it through node B's admin API frees node A too.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bench.common.dns_server import TestDnsServer
from bench.common.redis_server import RedisServer, require_redis_server
from bench.common.serve_process import KUMOCORE
from tests.tsa.tsa_fleet import (
    DOMAIN,
    MX_HOST,
    Node,
    ThrottlingSink,
    inject,
    shaping_file,
    wait_until,
)

pytestmark = pytest.mark.slow

SLOW_RATE = 4  # messages per second while the SetConfig action holds
RATE_RULE = f"""
[["{DOMAIN}".automation]]
regex = "4\\\\.7\\\\.28 .*rate limited"
action = {{ SetConfig = {{ name = "max_message_rate", value = "{SLOW_RATE}/s" }} }}
trigger = {{ Threshold = "3/hr" }}
duration = "14s"

[["{DOMAIN}".automation]]
regex = "\\\\[TS04\\\\]"
action = "Suspend"
duration = "10 minutes"
"""


@pytest.fixture
def dns() -> Iterator[TestDnsServer]:
    zones = {DOMAIN: {"MX": [(10, MX_HOST)]}, MX_HOST: {"A": ["127.0.0.1"]}}
    with TestDnsServer(zones) as server:
        yield server


@pytest.fixture
async def sink() -> AsyncIterator[ThrottlingSink]:
    started = await ThrottlingSink().start()
    yield started
    await started.stop()


@pytest.fixture
async def fleet(
    tmp_path: Path, dns: TestDnsServer, sink: ThrottlingSink
) -> AsyncIterator[tuple[Node, Node]]:
    require_redis_server()
    shaping = tmp_path / "shaping.toml"
    shaping.write_text(shaping_file(sink.port, RATE_RULE))
    with RedisServer() as redis:
        env = {"TSA_DNS": dns.address, "TSA_REDIS": redis.url, "TSA_SHAPING": str(shaping),
               "TSA_STORE": "redis-throttles"}  # fmt: skip
        nodes = (Node("a", tmp_path, env), Node("b", tmp_path, env))
        try:
            for node in nodes:
                node.start()
            await asyncio.gather(*(n.wait_ready() for n in nodes))
            yield nodes
        finally:
            for node in nodes:
                node.stop()


def arrivals(sink: ThrottlingSink, prefix: str) -> list[float]:
    return sorted(m.at for m in sink.messages if m.recipient.startswith(prefix))


async def test_rate_limit_answers_slow_both_nodes_to_the_rule_rate_until_it_expires(
    fleet: tuple[Node, Node], sink: ThrottlingSink
) -> None:
    a, b = fleet
    # Fast before: 40 messages from both nodes arrive well above the slow rate.
    await asyncio.gather(inject(a, [f"before{n}@{DOMAIN}" for n in range(20)]),
                         inject(b, [f"before{n}@{DOMAIN}" for n in range(20, 40)]))  # fmt: skip
    await sink.wait_for(40, timeout=30)
    before = arrivals(sink, "before")
    assert before[-1] - before[0] < 40 / SLOW_RATE / 2, [round(t - before[0], 2) for t in before]

    # Three 421 4.7.28 answers to node A: the threshold (3) is reached.
    await inject(a, [f"ratelimit{n}@{DOMAIN}" for n in range(3)])
    triggered = time.monotonic()

    async def on_both() -> bool:
        found = [await n.actions() for n in (a, b)]
        return all(any(x["kind"] == "SetConfig" and x["applied"] for x in acts) for acts in found)

    await wait_until(on_both, 15, "the SetConfig action on both nodes")
    action = next(x for x in await b.actions() if x["kind"] == "SetConfig")
    assert action["name"] == "max_message_rate" and action["value"] == f"{SLOW_RATE}/s"
    assert action["matches"] == 3 and action["domain"] == DOMAIN
    assert "shaping.toml" in action["rule"] and ".automation[1]" in action["rule"]
    metrics = (await b.api("GET", "/metrics"))[1]
    assert "kumocore_tsa_action_expires_timestamp_seconds{" in metrics

    # Slow while it holds: 24 messages (12 per node) take ~ (24 - burst) / rate seconds.
    count = 24
    await asyncio.gather(inject(a, [f"during{n}@{DOMAIN}" for n in range(count // 2)]),
                         inject(b, [f"during{n}@{DOMAIN}" for n in range(count // 2, count)]))
    await sink.wait_for(40 + count, timeout=40)
    during = arrivals(sink, "during")
    spread = during[-1] - during[0]
    assert spread >= (count - 2 * SLOW_RATE) / SLOW_RATE * 0.8, spread
    assert {m.ehlo for m in sink.messages if m.recipient.startswith("during")} != set()
    print(f"\nTSA figures: before {len(before)} msgs in {before[-1] - before[0]:.2f}s; "
          f"during {count} msgs in {spread:.2f}s (rule rate {SLOW_RATE}/s)")

    # Expiry: the action leaves both nodes, and the path is fast again.
    remaining = action["expires"] - time.time()
    await wait_until(lambda: _none_left(a, b), remaining + 10, "the action to expire")
    expired_after = time.monotonic() - triggered
    await asyncio.gather(inject(a, [f"after{n}@{DOMAIN}" for n in range(count // 2)]),
                         inject(b, [f"after{n}@{DOMAIN}" for n in range(count // 2, count)]))
    await sink.wait_for(40 + 2 * count, timeout=30)
    after = arrivals(sink, "after")
    assert after[-1] - after[0] < spread / 2, (after[-1] - after[0], spread)
    print(f"TSA figures: action gone {expired_after:.1f}s after the trigger (duration 14s); "
          f"after {count} msgs in {after[-1] - after[0]:.2f}s")


async def _none_left(a: Node, b: Node) -> bool:
    return not await a.actions() and not await b.actions()


async def test_a_suspension_holds_both_nodes_and_a_cancel_on_one_frees_both(
    fleet: tuple[Node, Node], sink: ThrottlingSink
) -> None:
    a, b = fleet
    await inject(a, [f"ts04@{DOMAIN}"])

    async def suspended_on_both() -> bool:
        found = [await n.actions() for n in (a, b)]
        return all(any(x["kind"] == "Suspend" and x["applied"] for x in acts) for acts in found)

    seen = await wait_until(suspended_on_both, 15, "the Suspend action on both nodes")
    await asyncio.gather(inject(a, [f"held{n}@{DOMAIN}" for n in range(5)]),
                         inject(b, [f"held{n}@{DOMAIN}" for n in range(5, 10)]))  # fmt: skip
    await asyncio.sleep(3)
    assert not arrivals(sink, "held"), "a suspended path delivered"

    action = next(x for x in await b.actions() if x["kind"] == "Suspend")
    assert action["site"].endswith("@smtp_client")
    listed = await asyncio.to_thread(
        subprocess.run, [str(KUMOCORE), "tsa", "list", "--endpoint",
                         f"http://127.0.0.1:{a.http_port}"], capture_output=True, text=True,
        timeout=30)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert f"Suspend on {action['site']}" in listed.stdout and action["id"] in listed.stdout
    status, body = await b.api("DELETE", "/api/admin/tsa/v1", {"id": action["id"]})
    assert status == 200, body
    await sink.wait_for(10, timeout=20)
    assert len(arrivals(sink, "held")) == 10
    status, body = await a.api("DELETE", "/api/admin/tsa/v1", {"id": action["id"]})
    assert status == 404 and "no active automation action" in body["error"]
    print(f"\nTSA figures: suspension visible on both nodes {seen:.2f}s after the 421")


async def test_an_admin_suspend_bounce_and_resume_on_one_node_apply_on_both(
    fleet: tuple[Node, Node], sink: ThrottlingSink
) -> None:
    a, b = fleet
    status, body = await a.api("POST", "/api/admin/suspend/v1",
                               {"domain": DOMAIN, "reason": "maintenance", "duration": "5m"})
    assert status == 200, body
    rule_id = body["id"]

    async def listed_on_b() -> bool:
        return any(r["id"] == rule_id for r in (await b.api("GET", "/api/admin/suspend/v1"))[1])

    seen = await wait_until(listed_on_b, 5, "the admin suspension on node B")
    await inject(b, [f"paused{n}@{DOMAIN}" for n in range(3)])
    await asyncio.sleep(2)
    assert not arrivals(sink, "paused"), "node B delivered under node A's suspension"

    # Resume on B: node A's own rule goes too. As in KumoMTA, the messages the suspension
    # deferred wait for their retry (1 hour here); new mail goes out at once.
    status, body = await b.api("DELETE", "/api/admin/suspend/v1", {"id": rule_id})
    assert status == 200, body

    async def gone_on_a() -> bool:
        status, left = await a.api("GET", "/api/admin/suspend/v1")
        return status == 200 and not [r for r in left if r["id"] == rule_id]

    await wait_until(gone_on_a, 5, "node A to drop the suspension resumed on node B")
    await inject(a, [f"resumed{n}@{DOMAIN}" for n in range(3)])
    await sink.wait_for(3, timeout=20)
    assert len(arrivals(sink, "resumed")) == 3 and not arrivals(sink, "paused")

    # A bounce made on A bounces what waits on B (held by another suspension there).
    status, body = await b.api("POST", "/api/admin/suspend/v1",
                               {"domain": DOMAIN, "reason": "hold", "duration": "5m"})
    await inject(b, [f"doomed{n}@{DOMAIN}" for n in range(4)])
    status, body = await a.api("POST", "/api/admin/bounce/v1",
                               {"domain": DOMAIN, "reason": "purge", "duration": "5m"})
    assert status == 200, body

    async def bounced_on_b() -> bool:
        rules = (await b.api("GET", "/api/admin/bounce/v1"))[1]
        return any(r["id"] == body["id"] and r["total_bounced"] == 7 for r in rules)

    # the 4 new ones and the 3 still waiting for their retry since the first suspension
    await wait_until(bounced_on_b, 10, "node B to bounce its 7 waiting messages")
    assert not arrivals(sink, "doomed") and not arrivals(sink, "paused")
    print(f"\nTSA figures: admin suspension on node A listed on node B after {seen:.2f}s")


async def test_a_repeated_admin_suspend_replaces_the_first_on_every_node_and_in_the_store(
    fleet: tuple[Node, Node], sink: ThrottlingSink
) -> None:
    a, b = fleet
    ask = {"domain": DOMAIN, "reason": "maintenance", "duration": "5m"}
    status, first = await a.api("POST", "/api/admin/suspend/v1", ask)
    assert status == 200, first
    status, second = await a.api("POST", "/api/admin/suspend/v1", {**ask, "reason": "longer"})
    assert status == 200, second

    async def only_the_second_on_b() -> bool:
        listed = (await b.api("GET", "/api/admin/suspend/v1"))[1]
        return [r["id"] for r in listed] == [second["id"]]

    await wait_until(only_the_second_on_b, 5, "node B to list only the replacing suspension")
    # The replaced id is gone from the shared store too: cancelling it is a 404 on either
    # node (it answered 200 while the store still held it), and the second still holds.
    for node in (b, a):
        status, body = await node.api("DELETE", "/api/admin/suspend/v1", {"id": first["id"]})
        assert status == 404, body
    status, body = await b.api("DELETE", "/api/admin/suspend/v1", {"id": second["id"]})
    assert status == 200, body
