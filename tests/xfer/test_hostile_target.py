"""A transfer target that never answers, or answers with far too much, costs the source
only its own transfer queue: routing of other mail goes on, and nothing is lost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from kumocore.queue.routing_workers import ROUTING_WORKERS
from kumocore.testing.plugin import MakeNode
from kumocore.xfer.send import MAX_ANSWER, MAX_POSTS, XferSender
from tests.xfer.test_transfer import _parked_source

#: More messages than the node has routing tasks (each used to hold one while its POST
#: hung) and than the queue's POST slots, so that some wait for a slot.
COUNT = ROUTING_WORKERS + MAX_POSTS


class _Target:
    """An HTTP "target" on 127.0.0.1: accepts connections and then ``behaviour``."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await reader.readuntil(b"\r\n\r\n")  # the request head; the body is ignored
            if self.behaviour == "huge":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
                chunk = b"x" * 65536
                for _ in range(64):  # 4 MiB, far past MAX_ANSWER
                    writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    await writer.drain()
                writer.write(b"0\r\n\r\n")
                await writer.drain()
            await asyncio.sleep(3600)  # "silent": never answers
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


@pytest.fixture
async def target(request: pytest.FixtureRequest) -> AsyncIterator[_Target]:
    found = _Target(request.param)
    found.server = await asyncio.start_server(found._handle, "127.0.0.1", 0)
    try:
        yield found
    finally:
        found.server.close()


@pytest.mark.parametrize("target", ["silent"], indirect=True)
async def test_a_target_that_never_answers_does_not_hold_the_routing_of_other_mail(
    make_node: MakeNode, target: _Target
) -> None:
    source = await _parked_source(make_node, COUNT)
    status, answer = await source.admin(
        "POST", "/api/admin/xfer/v1", {"target": target.url, "reason": "drain"}
    )
    assert (status, answer) == (200, {"moved": COUNT})
    deadline = time.monotonic() + 5
    while target.connections < MAX_POSTS:
        assert time.monotonic() < deadline, target.connections
        await asyncio.sleep(0.02)
    # Every POST slot of the transfer queue is taken by the silent target; other mail
    # still goes out at once (before: each POST held one of 16 routing tasks for 60 s).
    started = time.monotonic()
    for i in range(20):
        await source.send(recipients=f"other{i}@example.net")
    await source.wait_for("Delivery", count=20)
    assert time.monotonic() - started < 5
    await asyncio.sleep(0.2)
    assert target.connections == MAX_POSTS  # the rest wait for a slot, not a connection
    assert source.logs("XferOut") == []  # and nothing was given up


@pytest.mark.parametrize("target", ["huge"], indirect=True)
async def test_an_answer_past_the_bound_is_a_transient_failure_and_the_message_stays(
    make_node: MakeNode, target: _Target
) -> None:
    source = await _parked_source(make_node, 1)
    status, _ = await source.admin(
        "POST", "/api/admin/xfer/v1", {"target": target.url, "reason": "drain"}
    )
    assert status == 200
    failure = (await source.wait_for("TransientFailure", count=2))[-1]  # the hold's, then this
    assert f"answer larger than {MAX_ANSWER} bytes" in failure["response"]["content"]
    assert source.logs("XferOut") == []
    services = source.runtime.services
    assert services is not None and len(services.queues.messages) == 1


async def test_the_sender_runs_at_most_max_posts_at_once() -> None:
    sender, running, most = XferSender(), 0, 0
    release = asyncio.Event()

    async def fake_deliver(*_: object) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1

    import kumocore.xfer.send as send

    original = send.deliver_by_xfer
    send.deliver_by_xfer = fake_deliver  # type: ignore[assignment]
    try:
        for _ in range(MAX_POSTS * 3):
            sender.submit(None, None, None)  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        assert (most, sender.in_flight) == (MAX_POSTS, MAX_POSTS * 3)
        release.set()
        while sender.in_flight:
            await asyncio.sleep(0.01)
    finally:
        send.deliver_by_xfer = original
    assert most == MAX_POSTS
