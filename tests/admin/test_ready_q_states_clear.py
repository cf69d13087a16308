"""``ready-q-states`` lists a ready queue only while it is held back: once the queue has
no message left to send, a ``connection_limited`` state it entered earlier is gone, not
reported (and its ``since`` kept) for as long as the node runs."""

from __future__ import annotations

import asyncio
import time

from kumocore.testing.plugin import MakeNode
from kumocore.testing.smtp_sink import RecordingSink
from tests.admin.test_ready_q_states import SHARED_LIMIT_POLICY, states


async def test_a_limited_queue_that_sent_everything_is_no_longer_listed(
    make_node: MakeNode,
) -> None:
    sink = await RecordingSink().start()
    node = await make_node(SHARED_LIMIT_POLICY.replace("PORT", str(sink.port)), sink=sink)
    await node.send(recipients=[f"r{n}@dest.test" for n in range(6)])
    seen: dict[str, object] = {}
    deadline = time.monotonic() + 10
    while not seen:  # one of the two paths was refused the one shared connection
        assert time.monotonic() < deadline
        seen = await states(node)
        await asyncio.sleep(0.02)
    await sink.wait_for(6, timeout=20)
    deadline = time.monotonic() + 10  # the connections idle out (1 s), slots are retried
    while (left := await states(node)) != {}:
        assert time.monotonic() < deadline, f"still listed with nothing to send: {left}"
        await asyncio.sleep(0.1)
