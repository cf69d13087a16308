"""A started node's runtime (kumocore.testing: memory spools, real queues, no listeners)
behind a real aiohttp server carrying only the admin routes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from kumocore.admin.routes import add_admin_routes
from kumocore.config import EgressPathConfig, EgressSource, QueueConfig
from kumocore.mail.message import Message
from kumocore.node.runtime import Runtime
from kumocore.queue.egress import PathKey
from kumocore.queue.manager import QueueManager
from kumocore.queue.session import SmtpEgressPath
from kumocore.testing.plugin import MakeNode

# An egress pool no policy defines: a message that becomes due fails routing with a 451
# and is rescheduled, so no test ever resolves MX records or connects anywhere.
NOWHERE_POOL = "nowhere"


@pytest.fixture
async def runtime(make_node: MakeNode) -> Runtime:
    node = await make_node(entrypoints=False, sink=False, listen=False)
    return node.runtime


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[TestClient[Any, Any]]:
    app = web.Application()
    add_admin_routes(app, runtime)
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as test_client:
        yield test_client


Enqueue = Callable[..., Message]


@pytest.fixture
def enqueue(runtime: Runtime) -> Enqueue:
    """Insert a message into the queue manager; by default due in an hour (so it waits)."""

    def insert(
        recipient: str = "user@example.com",
        *,
        due_in: float | None = 3600.0,
        data: bytes = b"Subject: hi\r\n\r\nhello\r\n",
        **meta: Any,
    ) -> Message:
        message = Message(
            "sender@example.org",
            recipient,
            data,
            meta=meta,
            due=None if due_in is None else time.time() + due_in,
        )
        config = QueueConfig.from_options({"egress_pool": NOWHERE_POOL})
        runtime.services.queues.insert(message, message.queue_name(), config)
        return message

    return insert


def make_ready(
    manager: QueueManager,
    messages: list[Message],
    site: str = "mx.example.com",
    source: str = "src1",
) -> SmtpEgressPath:
    """Move ``messages`` from the scheduler into an egress path's ready queue, as routing
    would.

    Messages are appended to the deque directly rather than through ``add`` so that no
    connection is attempted.
    """
    key = PathKey(source, site)
    ready = manager.paths.get(key)
    if ready is None:
        ready = SmtpEgressPath(
            manager.egress,
            key,
            "example.com",
            EgressSource.from_options({"name": source}),
            EgressPathConfig.from_options({"connection_limit": 7}),
        )
        manager.paths[key] = ready
    for message in messages:
        manager.unschedule(message.id)
        ready.messages.append(message)
    return ready
