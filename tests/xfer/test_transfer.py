"""Transfers between two real nodes: separate spools and listeners, one process."""

from __future__ import annotations

import asyncio
import json
import socket
import time

from kumocore.testing.node import Node
from kumocore.testing.plugin import MakeNode

N = 5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _waiting(node: Node) -> dict[str, int]:
    services = node.runtime.services
    assert services is not None
    return {name: q.waiting for name, q in services.queues.scheduled.items() if q.waiting}


async def _until_waiting(node: Node, expected: dict[str, int], timeout: float = 5.0) -> None:
    """Wait for the scheduled queues to hold ``expected`` (records precede requeues)."""
    deadline = time.monotonic() + timeout
    while _waiting(node) != expected:
        assert time.monotonic() < deadline, _waiting(node)
        await asyncio.sleep(0.02)


async def _parked_source(make_node: MakeNode, count: int = N) -> Node:
    """A source whose messages wait in their scheduled queue (tried once while held)."""
    source = await make_node(spool="rocksdb")
    hold = await source.hold()
    for i in range(count):
        await source.send(recipients=f"r{i}@example.com")
    await source.wait_for("TransientFailure", count=count)
    await _until_waiting(source, {"example.com": count})  # the record precedes the requeue
    status, _ = await source.admin("DELETE", "/api/admin/suspend/v1", {"id": hold})
    assert status == 200
    return source


async def test_xfer_moves_every_waiting_message_to_the_target(make_node: MakeNode) -> None:
    source = await _parked_source(make_node)
    target = await make_node(spool="rocksdb")
    status, answer = await source.admin(
        "POST", "/api/admin/xfer/v1", {"target": target.http_url, "reason": "scale in"}
    )
    assert (status, answer) == (200, {"moved": N})
    xfer_queue = f"{target.http_url}/.xfer.kumomta.internal"
    rebinds = await source.wait_for("AdminRebind", count=N)
    assert len(rebinds) == N and all(r["queue"] == xfer_queue for r in rebinds)
    outs = await source.wait_for("XferOut", count=N)
    ins = await target.wait_for("XferIn", count=N)
    assert {r["response"]["content"] for r in outs} == {f"new id is {r['id']}" for r in ins}
    assert {r["meta"]["xfer_prior_id"] for r in ins} == {r["id"] for r in outs}
    # Each lands in its original queue on the target, attempt count and all.
    assert sorted(r["queue"] for r in ins) == sorted(f"r{i}@example.com".split("@")[1]
                                                     for i in range(N))  # fmt: skip
    assert all(r["num_attempts"] == 1 for r in ins)
    # ... and keeps the retry time it had at the source (the held attempt put it off
    # by the default 20 minutes), as KumoMTA's xfer does.
    services = target.runtime.services
    assert services is not None
    dues = [q.due for q in services.queues.queued.values()]
    assert len(dues) == N and all(d is not None and d > time.time() + 600 for d in dues)
    assert target.logs("Delivery") == []
    await _until_waiting(source, {})  # the removals follow the XferOut records
    services = source.runtime.services
    assert services is not None
    deadline = time.monotonic() + 5
    while services.queues.messages:  # forgotten once the XferOut records are written
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


async def test_xfer_selects_queues_by_domain(make_node: MakeNode) -> None:
    source = await make_node()
    hold = await source.hold()
    await source.send(recipients=["a@example.com", "b@example.net"])
    await source.wait_for("TransientFailure", count=2)
    await _until_waiting(source, {"example.com": 1, "example.net": 1})
    await source.admin("DELETE", "/api/admin/suspend/v1", {"id": hold})
    target = await make_node()
    status, answer = await source.admin("POST", "/api/admin/xfer/v1", {
        "target": target.http_url, "reason": "r", "domain": "example.net"})  # fmt: skip
    assert (status, answer) == (200, {"moved": 1})
    [record] = await target.wait_for("XferIn")
    assert record["recipient"] == "b@example.net"
    await _until_waiting(source, {"example.com": 1})


async def test_target_down_then_up_is_retried_until_it_takes_the_message(
    make_node: MakeNode,
) -> None:
    port = _free_port()
    source = await _parked_source(make_node, 1)
    url = f"http://127.0.0.1:{port}"
    status, _ = await source.admin("POST", "/api/admin/xfer/v1",
                                   {"target": url, "reason": "scale in"})  # fmt: skip
    assert status == 200
    await source.wait_for("TransientFailure", count=2)  # held once, then the failed POST
    failure = source.logs("TransientFailure")[-1]
    assert failure["delivery_protocol"] == "xfer"
    assert "xfer POST" in failure["response"]["content"]
    assert source.logs("XferOut") == []
    target = await make_node(http={"listen": f"127.0.0.1:{port}"})
    [record] = await target.wait_for("XferIn", timeout=30)  # retry_interval is 10 s
    [out] = await source.wait_for("XferOut")
    assert out["response"]["content"] == f"new id is {record['id']}"


async def test_target_refusal_keeps_the_message_at_the_source(make_node: MakeNode) -> None:
    source = await _parked_source(make_node, 1)
    target = await make_node("""
local kumo = require 'kumo'
kumo.on('xfer_message_received', function(msg) kumo.reject(451, 'not now') end)
""")
    await source.admin("POST", "/api/admin/xfer/v1", {"target": target.http_url, "reason": "r"})
    await source.wait_for("TransientFailure", count=2)
    failure = source.logs("TransientFailure")[-1]
    assert "422" in failure["response"]["content"] and "not now" in failure["response"]["content"]
    await _until_waiting(source, {f"{target.http_url}/.xfer.kumomta.internal": 1})
    assert source.logs("XferOut") == []
    assert target.logs("XferIn") == []


async def test_cancel_puts_messages_back_in_their_queues(make_node: MakeNode) -> None:
    source = await _parked_source(make_node, 2)
    url = f"http://127.0.0.1:{_free_port()}"  # nobody listens: the messages stay queued
    await source.admin("POST", "/api/admin/xfer/v1", {"target": url, "reason": "scale in"})
    xfer_queue = f"{url}/.xfer.kumomta.internal"
    await source.wait_for("TransientFailure", count=4)
    await _until_waiting(source, {xfer_queue: 2})
    status, answer = await source.admin(
        "POST", "/api/admin/xfer/cancel/v1", {"queue_name": xfer_queue, "reason": "changed my mind"}
    )
    assert (status, answer) == (200, {"moved": 2})
    rebinds = await source.wait_for("AdminRebind", count=4)  # 2 there, 2 back
    back = [r for r in rebinds if r["queue"] == "example.com"]
    assert len(back) == 2
    assert "changed my mind" in back[0]["response"]["content"]
    await source.wait_for("Delivery", count=2)  # due at once, to the source's own sink
    delivered = source.logs("Delivery")
    assert all("xfer_queue_info" not in r["meta"] for r in delivered)


async def test_bad_requests_are_refused(make_node: MakeNode) -> None:
    node = await make_node()
    for path, body, status, error in [
        ("xfer/v1", {"reason": "r"}, 400, "URL is required"),
        ("xfer/v1", {"target": "ftp://x", "reason": "r"}, 400, "http:// or https://"),
        ("xfer/v1", {"target": "http://x"}, 400, "'reason' is required"),
        ("xfer/v1", {"target": "http://x", "reason": "r", "queue": "q"}, 400, "unknown field"),
        ("xfer/cancel/v1", {"queue_name": "example.com", "reason": "r"}, 400,
         "is not an xfer queue"),
        ("xfer/cancel/v1", {"queue_name": "http://x/.xfer.kumomta.internal", "reason": "r"},
         404, "is not a current scheduled queue"),
    ]:  # fmt: skip
        got, answer = await node.admin("POST", f"/api/admin/{path}", body)
        assert (got, error in answer["error"]) == (status, True), answer


async def _cli(*argv: str) -> tuple[int, str, str]:
    """``kumocore ARGV`` as a real process (the node keeps running on this loop)."""
    import sys

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kumocore.node.cli", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_cli_xfer_and_xfer_cancel_drive_the_endpoints(make_node: MakeNode) -> None:
    source = await _parked_source(make_node, 2)
    url = f"http://127.0.0.1:{_free_port()}"  # nobody listens: the messages stay queued
    code, _, err = await _cli("xfer", "--target", url, "--reason", "r",
                              "--endpoint", source.http_url)  # fmt: skip
    assert code == 1 and "use --everything" in err
    code, out, _ = await _cli("xfer", "--domain", "example.com", "--target", url,
                              "--reason", "scale in", "--endpoint", source.http_url)  # fmt: skip
    assert code == 0 and json.loads(out) == {"moved": 2}
    xfer_queue = f"{url}/.xfer.kumomta.internal"
    await _until_waiting(source, {xfer_queue: 2})
    code, out, _ = await _cli("xfer-cancel", xfer_queue, "--reason", "back",
                              "--endpoint", source.http_url)  # fmt: skip
    assert code == 0 and json.loads(out) == {"moved": 2}
    code, _, err = await _cli("xfer-cancel", "example.com", "--reason", "back",
                              "--endpoint", source.http_url)  # fmt: skip
    assert code == 1 and "is not an xfer queue" in err
