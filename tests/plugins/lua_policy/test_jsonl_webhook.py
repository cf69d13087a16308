"""KumoMTA's "Batched Webhook Example" for kumo.jsonl.new_tailer, run as a policy task (its
``kumo.on('main')`` script becomes a spawned task) against a real HTTP server that fails
the first post: the batch is retried, posted once accepted, and committed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from .support import Recorder, load

POLICY = """
local kumo = require 'kumo'

kumo.on('init', function()
  kumo.spawn_task { event_name = 'webhook.main', args = {} }
end)

kumo.on('webhook.stop', function() TAILER:close() end)

kumo.on('webhook.main', function()
  local client = kumo.http.build_client {}
  local max_retries = 5
  local retry_delay_seconds = 0.05

  local function post_batch(payload)
    return client
      :post('URL/log')
      :header('Content-Type', 'application/json')
      :body(payload)
      :send()
  end

  local function process_batch(records)
    local payload = kumo.serde.json_encode(records)
    for attempt = 1, max_retries do
      local response = post_batch(payload)
      if response:status_is_success() then
        return
      end
      local status = response:status_code()
      local disposition = string.format(
        '%d %s: %s', status, response:status_reason(), response:text())
      local retryable = status == 429 or status >= 500
      if not retryable or attempt == max_retries then
        kumo.log_error('webhook post failed, giving up: ' .. disposition)
        error('webhook post failed: ' .. disposition)
      end
      kumo.log_error('webhook post failed, retrying: ' .. disposition)
      kumo.time.sleep(retry_delay_seconds)
    end
  end

  local tailer = kumo.jsonl.new_tailer(
    {
      directory = 'LOGS',
      max_batch_size = 100,
      max_batch_latency = '1s',
      checkpoint_name = 'webhook-poster',
    },
    function(record)
      return record.egress_pool == 'customer-a'
    end
  )
  TAILER = tailer

  for batch in tailer:batches() do
    process_batch(batch:records())
    batch:commit()
  end

  tailer:close()
  client:close()
  kumo.test.mark('done')
end)
"""


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[str, list[Any]]]:
    posts: list[Any] = []

    async def log(request: web.Request) -> web.Response:
        posts.append(orjson.loads(await request.read()))
        if len(posts) == 1:
            return web.Response(status=503, text="busy")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/log", log)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", posts
    await runner.cleanup()


async def test_the_batched_webhook_example_posts_retries_and_commits(
    tmp_path: Path, webhook: tuple[str, list[Any]]
) -> None:
    url, posts = webhook
    logs = tmp_path / "logs"
    recorder = Recorder()
    runtime, policy = await load(
        tmp_path,
        """
        local w = require('kumo').jsonl.new_writer { log_dir = 'LOGS' }
        for i = 1, 6 do
          w:write_record { type = 'Delivery', id = i,
                           egress_pool = i % 2 == 0 and 'customer-a' or 'customer-b' }
        end
        w:close()
    """.replace("LOGS", str(logs))
        + POLICY.replace("URL", url).replace("LOGS", str(logs)),
        recorder=recorder,
    )
    await runtime.run_init()
    async with asyncio.timeout(5):
        while len(posts) < 2:
            await asyncio.sleep(0.01)
    expected = [{"type": "Delivery", "id": i, "egress_pool": "customer-a"} for i in (2, 4, 6)]
    assert posts == [expected, expected]  # refused once (503), then accepted
    async with asyncio.timeout(5):
        while not (logs / ".webhook-poster").exists():
            await asyncio.sleep(0.01)
    checkpoint = orjson.loads((logs / ".webhook-poster").read_bytes())
    assert checkpoint["line"] == 6 and checkpoint["file"].startswith(str(logs))
    await policy.call_custom_event("webhook.stop")  # closes the tailer while it waits
    assert await recorder.wait_for_marks(1) == ["done"]
