"""End to end: the example third-party plugin, installed from docs/examples, found through
its entry point, configured like a policy would, fed by a LogDispatcher, received by a real
HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pytest
from aiohttp import web
from kumocore_webhook_sink import WebhookSink

from kumocore import ConfigError
from kumocore.logs import LogDispatcher
from kumocore.policy.hooks import Hooks
from kumocore.policy.plugins import ENTRY_POINT_GROUP, make_plugin_manager, register_plugin
from tests.core.logs.fakes import FakeMessage, record


@dataclass
class Receiver:
    url: str
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    fail_next: int = 0  # answer 503 to this many requests first
    requests: int = 0


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver(url="")

    async def hook(request: web.Request) -> web.Response:
        state.requests += 1
        if state.fail_next > 0:
            state.fail_next -= 1
            return web.Response(status=503)
        state.batches.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}/hook"
    yield state
    await runner.cleanup()


def webhook_hooks() -> Hooks:
    """A fresh plugin manager holding only the webhook plugin, loaded from its entry point
    (scripts/setup.sh pip-installs docs/examples/kumocore-webhook-sink editable)."""
    (ep,) = [e for e in metadata.entry_points(group=ENTRY_POINT_GROUP)
             if e.name == "webhook_sink"]
    assert ep.dist is not None and ep.dist.metadata["Name"] == "kumocore-webhook-sink"
    pm = make_plugin_manager(load_entrypoints=False)
    register_plugin(pm, ep.load(), ep.name)
    return Hooks(pm)


async def test_records_are_posted_as_json_arrays_in_batches(receiver: Receiver) -> None:
    hooks = webhook_hooks()
    _, configure = hooks.policy_functions()["configure_webhook_sink"]
    configure(url=receiver.url, batch_size=3, meta=["tenant"], headers=["Subject"])
    dispatcher = LogDispatcher(hooks.log_sinks(), batch_latency=0.01)
    await dispatcher.start()
    msg = FakeMessage(meta={"tenant": "acme", "secret": "x"}, headers=[("Subject", "hello")])
    sent = [record(message=msg, queue=f"q{i}", header_names=dispatcher.header_names)
            for i in range(7)]
    for rec in sent:
        dispatcher.submit(rec)
    await dispatcher.close()
    await hooks.shutdown()
    assert all(len(batch) <= 3 for batch in receiver.batches)
    received = [r for batch in receiver.batches for r in batch]
    assert received == [r.to_json(["tenant"], ["Subject"]) for r in sent]
    assert received[0]["meta"] == {"tenant": "acme"}
    assert received[0]["headers"] == {"Subject": "hello"}
    assert dispatcher.stats()[f"webhook:{receiver.url}"]["written"] == 7


async def test_failed_posts_are_retried_with_backoff(receiver: Receiver) -> None:
    hooks = webhook_hooks()
    hooks.policy_functions()["configure_webhook_sink"][1](
        url=receiver.url, retry_interval=0.01, max_attempts=4)
    (sink,) = hooks.log_sinks()
    assert isinstance(sink, WebhookSink)
    receiver.fail_next = 2
    await sink.write_batch([record()])
    await sink.close()
    assert receiver.requests == 3 and len(receiver.batches) == 1
    assert sink.stats() == {"posted": 1, "dropped": 0, "retries": 2}


async def test_records_are_dropped_and_counted_after_max_attempts(receiver: Receiver) -> None:
    hooks = webhook_hooks()
    hooks.policy_functions()["configure_webhook_sink"][1](
        url=receiver.url, retry_interval=0.01, max_attempts=3, batch_size=2)
    (sink,) = hooks.log_sinks()
    assert isinstance(sink, WebhookSink)
    receiver.fail_next = 100
    await sink.write_batch([record(), record(), record()])
    await sink.close()
    assert receiver.requests == 6  # two POSTs (2 + 1 records), three attempts each
    assert sink.stats() == {"posted": 0, "dropped": 3, "retries": 4}


async def test_an_unreachable_receiver_does_not_block_submit() -> None:
    hooks = webhook_hooks()
    hooks.policy_functions()["configure_webhook_sink"][1](
        url="http://127.0.0.1:9/hook", retry_interval=0.5, max_attempts=5, timeout=1.0)
    dispatcher = LogDispatcher(hooks.log_sinks(), buffer_size=10, batch_latency=0)
    await dispatcher.start()
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(100):
        dispatcher.submit(record())
    assert loop.time() - started < 0.5
    await dispatcher.close(timeout=0.2)
    stats = dispatcher.stats()["webhook:http://127.0.0.1:9/hook"]
    assert stats["dropped"] == 100 and stats["written"] == 0


def test_unknown_webhook_option_is_a_config_error() -> None:
    configure = webhook_hooks().policy_functions()["configure_webhook_sink"][1]
    with pytest.raises(ConfigError, match="batchsize"):
        configure(url="http://127.0.0.1:1/", batchsize=3)
    with pytest.raises(ConfigError, match="url"):
        configure(batch_size=3)
