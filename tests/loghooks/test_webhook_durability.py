"""Log hooks end to end: a webhook log hook (``policy-extras.log_hooks:new_json``) on a
real ``kumocore serve`` with RocksDB spools. While the webhook is down its records pile up
in the hook's queue (visible in ``queue summary``), survive kill -9, and once the webhook
is up every record the local log has arrives there too, identical (at-least-once:
duplicates are counted, none is missing)."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.common.serve_process import ServeProcess, free_port
from bench.common.smtp_client import RawSmtpClient
from kumocore.logs.reader import iter_records
from kumocore.testing.webhook import RecordingWebhook, record_key

pytestmark = pytest.mark.slow

MESSAGES = 300
CLIENTS = 4  # concurrent SMTP connections while the webhook is down
OUTAGE = 10.0  # seconds the webhook stays down after the backlog is complete
HOOK_QUEUE = "webhook.log_hook"

POLICY = '''
local kumo = require 'kumo'
local log_hooks = require 'policy-extras.log_hooks'

log_hooks:new_json {{
  name = 'webhook',
  url = 'http://127.0.0.1:{hook_port}/log',
  batch_size = 10,
  max_batch_latency = '200ms',
  queue_config = {{ retry_interval = '1s', max_retry_interval = '2s' }},
}}

kumo.on('init', function()
  kumo.define_spool {{ name = 'data', path = '{spool}/data', kind = 'RocksDB' }}
  kumo.define_spool {{ name = 'meta', path = '{spool}/meta', kind = 'RocksDB' }}
  kumo.configure_local_logs {{ log_dir = '{logs}' }}
  kumo.start_esmtp_listener {{ listen = '127.0.0.1:{smtp_port}', relay_hosts = {{ '127.0.0.1' }} }}
  kumo.start_http_listener {{ listen = '127.0.0.1:{http_port}' }}
end)

kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  -- ordinary mail goes nowhere (a closed port) and is retried much later
  return kumo.make_queue_config {{
    retry_interval = '1h',
    protocol = {{ smtp = {{ mx_list = {{ '127.0.0.1' }} }} }},
  }}
end)

kumo.on('get_egress_path_config', function(domain, source, site)
  return kumo.make_egress_path {{
    smtp_port = {closed_port}, prohibited_hosts = {{}}, enable_tls = 'Disabled',
  }}
end)
'''


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[ServeProcess, dict[str, int], Path]]:
    ports = {name: free_port() for name in ("smtp", "http", "closed", "hook")}
    logs = tmp_path / "logs"
    policy = tmp_path / "policy.lua"
    policy.write_text(POLICY.format(
        spool=tmp_path / "spool", logs=logs, smtp_port=ports["smtp"],
        http_port=ports["http"], closed_port=ports["closed"], hook_port=ports["hook"]))
    kumo = ServeProcess(policy, tmp_path / "kumocore.log")
    yield kumo, ports, logs
    kumo.stop()


async def send_messages(port: int, count: int, prefix: str = "") -> None:
    client = await RawSmtpClient.connect(port)
    await client.hello()
    for index in range(count):
        _, final = await client.send_mail(
            "sender@example.com", [f"{prefix}user{index}@example.com"],
            f"Subject: hooked {index}\r\n\r\nbody\r\n")
        assert final.code == 250, str(final)
    await client.close()


async def hook_queue_count(http_port: int) -> int:
    """Messages waiting in the hook's scheduled queue plus its ready queue."""
    url = f"http://127.0.0.1:{http_port}/api/admin/queue-summary/v1"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        summary = await response.json()
    scheduled = sum(q["count"] for q in summary.get("scheduled", [])
                    if q["name"] == HOOK_QUEUE)
    ready = sum(r["count"] for r in summary.get("ready", []) if "@lua:" in r["name"])
    return int(scheduled + ready)


def hookable_local_records(logs: Path) -> list[dict[str, Any]]:
    """What the local log has that the hook must deliver (not hook deliveries' own)."""
    return [r for r in iter_records(logs) if r.get("reception_protocol") != "LogRecord"]


async def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def test_webhook_records_wait_while_target_down_survive_kill9_and_all_arrive(
    deployment: tuple[ServeProcess, dict[str, int], Path],
) -> None:
    kumo, ports, logs = deployment
    webhook = RecordingWebhook(ports["hook"])
    kumo.start()
    await kumo.wait_for_smtp(ports["smtp"])
    started = time.monotonic()
    await asyncio.gather(*(send_messages(ports["smtp"], MESSAGES // CLIENTS, f"c{n}-")
                           for n in range(CLIENTS)))
    receive_seconds = time.monotonic() - started

    async def backlog_complete() -> bool:
        # each message: a Reception and a TransientFailure record (closed port)
        return await hook_queue_count(ports["http"]) >= 2 * MESSAGES

    # The webhook is down: every record waits in the hook's queue, visible in the summary.
    await wait_for(backlog_complete, 60, "the hook queue to hold every record")
    await asyncio.sleep(OUTAGE)  # retry rounds against the closed webhook
    assert webhook.posts == 0
    kumo.kill9()

    kumo.start()
    await kumo.wait_for_smtp(ports["smtp"])
    await wait_for(backlog_complete, 60, "the hook queue to be recovered from the spool")
    await webhook.start()
    drain_started = time.monotonic()
    try:
        expected = hookable_local_records(logs)
        assert len(expected) >= 2 * MESSAGES

        async def drained() -> bool:
            return await hook_queue_count(ports["http"]) == 0 and \
                {record_key(r) for r in expected} <= {record_key(r) for r in webhook.records}

        try:
            await wait_for(drained, 90, "the hook queue to drain into the webhook")
        except AssertionError:
            print("hook queue:", await hook_queue_count(ports["http"]), "received:",
                  len(webhook.records), "posts:", webhook.posts, "expected:", len(expected))
            print("missing sample:", [r for r in expected if record_key(r) not in
                                      {record_key(w) for w in webhook.records}][:1])
            print("received sample:", webhook.records[:1])
            raise
    finally:
        await webhook.stop()
    local = collections.Counter(record_key(r) for r in hookable_local_records(logs))
    received = webhook.counts()
    missing = set(local) - set(received)
    duplicates = sum(n - 1 for n in received.values() if n > 1)
    print(f"records: local={sum(local.values())} webhook={len(webhook.records)} "
          f"duplicates={duplicates} posts={webhook.posts} "
          f"received {MESSAGES} messages in {receive_seconds:.1f}s, "
          f"drained in {time.monotonic() - drain_started:.1f}s")
    assert not missing
    assert webhook.bad_bodies == []  # every POST was a JSON batch of records
    assert set(received) <= set(local)  # nothing the local log does not have
    assert webhook.posts < len(webhook.records)  # batched: several records per POST
