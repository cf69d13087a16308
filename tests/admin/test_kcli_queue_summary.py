"""``kumocore queue-summary``: kcli's table of ready and scheduled queues, with kcli's
``--by-volume``, ``--domain`` and ``--limit``, the held queues' reasons, against a real
node (Lua policy, recording sink, a DNS server on loopback)."""

from __future__ import annotations

import json
from typing import Any

from kumocore.admin.kcli_queue_summary import ready_parts
from tests.support.admin_cli import run_cli
from tests.support.provider_node import settled_node

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


async def test_queue_summary_prints_kclis_tables_with_held_queues_and_its_options(
    capsys: Any,
) -> None:
    async with settled_node() as node:  # idle connections closed: C is 0
        endpoint = ("--endpoint", node.http_url)
        assert (await node.admin("POST", "/api/admin/suspend-ready-q/v1", {
            "name": BIG_READY, "reason": "maintenance", "duration": "1h"}))[0] == 200
        assert (await node.admin("POST", "/api/admin/suspend/v1", {
            "domain": "later.test", "reason": "hold later", "duration": "1h"}))[0] == 200
        code, out, err = await run_cli(capsys, "queue-summary", *endpoint)
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
        code, out, _ = await run_cli(capsys, "queue-summary", "--by-volume", "--limit", "1",
                                     *endpoint)  # fmt: skip
        ready, scheduled = out.rstrip("\n").split("\n\n")
        assert code == 0 and ready.splitlines()[1].split()[0] == "mx.small.test"  # D 2
        assert [line.split()[0] for line in scheduled.splitlines()[1:]] == ["big.test"]
        # --domain: the ready queues of its site, the scheduled queues named by it or of
        # that site (the node found later.test's site in the background).
        code, out, _ = await run_cli(capsys, "queue-summary", "--domain", "later.test",
                                     *endpoint)  # fmt: skip
        ready, scheduled = out.rstrip("\n").split("\n\n")
        assert code == 0 and len(ready.splitlines()) == 1  # no ready queue of mx.later.test
        assert [line.split()[0] for line in scheduled.splitlines()[1:]] == ["later.test"]
        code, out, _ = await run_cli(capsys, "queue-summary", "--domain", "big.test", *endpoint)
        ready, scheduled = out.rstrip("\n").split("\n\n")
        assert [line.split()[0] for line in ready.splitlines()[1:]] == ["mx.big.test"]
        assert [line.split()[0] for line in scheduled.splitlines()[1:]] == ["big.test"]
        code, _, err = await run_cli(capsys, "queue-summary", "--limit", "-2", *endpoint)
        assert code == 1 and "--limit" in err


async def test_inspect_sched_q_and_inspect_message_print_the_apis_json_as_kcli(
    capsys: Any,
) -> None:
    async with settled_node() as node:  # idle connections closed: C is 0
        endpoint = ("--endpoint", node.http_url)
        code, out, err = await run_cli(capsys, "inspect-sched-q", "big.test", *endpoint)
        assert (code, err) == (0, "")
        view = json.loads(out)
        assert (view["queue_name"], view["num_scheduled"]) == ("big.test", 1)
        [message] = view["messages"]
        assert "data" not in message["message"]  # no --want-body
        code, out, _ = await run_cli(capsys, "inspect-sched-q", "big.test", "--limit", "0",
                                     *endpoint)  # fmt: skip
        assert code == 0 and json.loads(out)["messages"] == []
        code, out, _ = await run_cli(capsys, "inspect-sched-q", "big.test", "--no-limit",
                                     "--want-body", *endpoint)  # fmt: skip
        assert "tempfail@big.test" in json.loads(out)["messages"][0]["message"]["data"]
        code, out, _ = await run_cli(capsys, "inspect-message", message["id"], "--want-body",
                                     *endpoint)  # fmt: skip
        answer = json.loads(out)
        assert code == 0 and answer["id"] == message["id"]
        assert answer["message"]["recipient"] == "tempfail@big.test"
        assert "\r\n" in answer["message"]["data"]  # the JSON answer whole, not as lines
        code, _, err = await run_cli(capsys, "inspect-message", "0" * 32, *endpoint)
        assert code == 1 and "error" in json.loads(err)
