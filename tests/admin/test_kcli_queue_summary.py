"""``kumocore queue-summary``: kcli's table of ready and scheduled queues, with kcli's
``--by-volume``, ``--domain`` and ``--limit``, the held queues' reasons, against a real
node (Lua policy, recording sink, a DNS server on loopback)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from kumocore.admin.kcli_queue_summary import ready_parts
from kumocore.testing.node import Node, start_node
from kumocore.testing.smtp_sink import RecordingSink
from tests.admin.test_provider_queued_metrics import POLICY, _cli

BIG_READY = "ip-1->mx.big.test@smtp_client"
SMALL_READY = "ip-1->mx.small.test@smtp_client"


def test_a_ready_queue_name_splits_into_site_source_and_protocol_as_kcli_splits_it() -> None:
    assert ready_parts(BIG_READY) == ("mx.big.test", "ip-1", "smtp_client")
    assert ready_parts("s->example.com@lua:make.webhook") == (
        "example.com", "s", "lua:make.webhook")
    assert ready_parts("s->(mx1|mx2).x.test@smtp_client") == (
        "(mx1|mx2).x.test", "s", "smtp_client")
    # A protocol kcli does not know stays part of the site, as in kcli.
    assert ready_parts("unspecified->deferred.internal@defersmtpinject") == (
        "deferred.internal@defersmtpinject", "unspecified", "")


async def _settled_node(sink: RecordingSink) -> Node:
    """Two deliveries to small.test, a 451 from big.test (its message waits an hour), a
    message for later.test scheduled an hour ahead; idle connections closed."""
    zones: dict[str, Any] = {name: {"MX": [(10, f"mx.{name}")]}
                             for name in ("later.test", "big.test", "small.test")}
    zones.update({f"mx.{name}": {"A": ["127.0.0.1"]} for name in list(zones)})
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    policy = (POLICY.replace("SINK_PORT", str(sink.port)).replace("LATER", later)
              .replace("prohibited_hosts = {} }", "prohibited_hosts = {}, idle_timeout = 0 }"))
    node = await start_node(policy, sink=sink, zones=zones)
    for recipient in ("a@small.test", "b@small.test", "tempfail@big.test", "x@later.test"):
        assert await node.send("s@src.test", recipient) == {}
    await node.wait_for("Delivery", count=2, timeout=20)
    await node.wait_for("TransientFailure", timeout=20)
    for _ in range(100):  # the later.test queue's site found; the connections closed
        summary = (await node.admin("GET", "/api/admin/queue-summary/v1"))[1]
        sites = {e["name"]: e["site"] for e in summary["scheduled"]}
        if sites.get("later.test") and not summary["totals"]["connections"]:
            break
        await asyncio.sleep(0.05)
    return node


async def test_queue_summary_prints_kclis_tables_with_held_queues_and_its_options(
    capsys: Any,
) -> None:
    sink = await RecordingSink().start()
    node = await _settled_node(sink)
    endpoint = ("--endpoint", node.http_url)
    try:
        assert (await node.admin("POST", "/api/admin/suspend-ready-q/v1", {
            "name": BIG_READY, "reason": "maintenance", "duration": "1h"}))[0] == 200
        assert (await node.admin("POST", "/api/admin/suspend/v1", {
            "domain": "later.test", "reason": "hold later", "duration": "1h"}))[0] == 200
        code, out, err = await _cli(capsys, "queue-summary", *endpoint)
        assert (code, err) == (0, "")
        ready, scheduled = out.rstrip("\n").split("\n\n")
        # Natural name order; D T C Q; why a queue is held in the last column.
        assert [line.split(None, 7) for line in ready.splitlines()] == [
            ["SITE", "SOURCE", "PROTO", "D", "T", "C", "Q"],
            ["mx.big.test", "ip-1", "smtp_client", "0", "1", "0", "0",
             "🛑suspend: maintenance"],
            ["mx.small.test", "ip-1", "smtp_client", "2", "0", "0", "0"],
        ]
        assert ready.splitlines()[0] == "SITE          SOURCE PROTO       D T C Q"
        assert [line.split(None, 2) for line in scheduled.splitlines()] == [
            ["SCHEDULED", "QUEUE", "COUNT"],
            ["big.test", "1"],
            ["later.test", "1", "🛑suspend: hold later"],
            ["small.test", "0"],  # emptied, kept until its reap_interval
        ]
        code, out, _ = await _cli(capsys, "queue-summary", "--by-volume", "--limit", "1",
                                  *endpoint)  # fmt: skip
        ready, scheduled = out.rstrip("\n").split("\n\n")
        assert code == 0 and ready.splitlines()[1].split()[0] == "mx.small.test"  # D 2
        assert [line.split()[0] for line in scheduled.splitlines()[1:]] == ["big.test"]
        # --domain: the ready queues of its site, the scheduled queues named by it or of
        # that site (the node found later.test's site in the background).
        code, out, _ = await _cli(capsys, "queue-summary", "--domain", "later.test",
                                  *endpoint)  # fmt: skip
        ready, scheduled = out.rstrip("\n").split("\n\n")
        assert code == 0 and len(ready.splitlines()) == 1  # no ready queue of mx.later.test
        assert [line.split()[0] for line in scheduled.splitlines()[1:]] == ["later.test"]
        code, out, _ = await _cli(capsys, "queue-summary", "--domain", "big.test", *endpoint)
        ready, scheduled = out.rstrip("\n").split("\n\n")
        assert [line.split()[0] for line in ready.splitlines()[1:]] == ["mx.big.test"]
        assert [line.split()[0] for line in scheduled.splitlines()[1:]] == ["big.test"]
        code, _, err = await _cli(capsys, "queue-summary", "--limit", "-2", *endpoint)
        assert code == 1 and "--limit" in err
    finally:
        await node.stop()
        await sink.stop()


async def test_inspect_sched_q_and_inspect_message_print_the_apis_json_as_kcli(
    capsys: Any,
) -> None:
    sink = await RecordingSink().start()
    node = await _settled_node(sink)
    endpoint = ("--endpoint", node.http_url)
    try:
        code, out, err = await _cli(capsys, "inspect-sched-q", "big.test", *endpoint)
        assert (code, err) == (0, "")
        view = json.loads(out)
        assert (view["queue_name"], view["num_scheduled"]) == ("big.test", 1)
        [message] = view["messages"]
        assert "data" not in message["message"]  # no --want-body
        code, out, _ = await _cli(capsys, "inspect-sched-q", "big.test", "--limit", "0",
                                  *endpoint)  # fmt: skip
        assert code == 0 and json.loads(out)["messages"] == []
        code, out, _ = await _cli(capsys, "inspect-sched-q", "big.test", "--no-limit",
                                  "--want-body", *endpoint)  # fmt: skip
        assert "tempfail@big.test" in json.loads(out)["messages"][0]["message"]["data"]
        code, out, _ = await _cli(capsys, "inspect-message", message["id"], "--want-body",
                                  *endpoint)  # fmt: skip
        answer = json.loads(out)
        assert code == 0 and answer["id"] == message["id"]
        assert answer["message"]["recipient"] == "tempfail@big.test"
        assert "\r\n" in answer["message"]["data"]  # the JSON answer whole, not as lines
        code, _, err = await _cli(capsys, "inspect-message", "0" * 32, *endpoint)
        assert code == 1 and "error" in json.loads(err)
    finally:
        await node.stop()
        await sink.stop()
