"""Log hooks to real brokers: a NATS JetStream hook (``kumo.nats.connect``) and an AMQP
hook (``kumo.amqp.basic_publish``, RabbitMQ), both configured with
``policy-extras.log_hooks:new`` on a real ``kumocore serve``. NATS is down while mail
is received: its records wait in the hook's queue, then all arrive once it is back; the
AMQP hook delivers meanwhile. Each broker ends up with every record of the local log."""

from __future__ import annotations

import asyncio
import collections
import json
from pathlib import Path
from typing import Any

import pytest

from bench.common.serve_process import ServeProcess, free_port
from kumocore.testing.webhook import record_key
from tests.loghooks.test_webhook_durability import (
    hookable_local_records,
    send_messages,
    wait_for,
)
from tests.support.brokers import NATS, RABBITMQ, available, start_nats, start_rabbitmq

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (available(NATS) and available(RABBITMQ)),
                       reason="nats-server / rabbitmq-server not installed (scripts/setup.sh)"),
]

MESSAGES = 20
SUBJECT = "kumo.logs"
AMQP_QUEUE = "kumo-logs"

POLICY = '''
local kumo = require 'kumo'
local log_hooks = require 'policy-extras.log_hooks'
local RETRY = {{ retry_interval = '1s', max_retry_interval = '2s' }}

log_hooks:new {{
  name = 'nats',
  batch_size = 20,
  max_batch_latency = '200ms',
  queue_config = RETRY,
  constructor = function(domain, tenant, campaign)
    local client = kumo.nats.connect {{ servers = {{ '127.0.0.1:{nats_port}' }},
      name = 'kumocore-logs', connection_timeout = '2s' }}
    local sender = {{}}
    function sender:send_batch(messages)
      for _, msg in ipairs(messages) do
        local record = msg:get_meta 'log_record'
        client:publish {{ subject = '{subject}', payload = msg:get_data(),
          headers = {{ ['Nats-Msg-Id'] = string.format('%s:%s:%d', record.id, record.type,
                                                       record.num_attempts) }} }}
      end
      return 'published ' .. #messages
    end
    function sender:close()
      client:close()
    end
    return sender
  end,
}}

log_hooks:new {{
  name = 'amqp',
  queue_config = RETRY,
  constructor = function(domain, tenant, campaign)
    local sender = {{}}
    function sender:send(msg)
      kumo.amqp.basic_publish {{
        routing_key = '{amqp_queue}', payload = msg:get_data(),
        content_type = 'application/json',
        connection = {{ host = '127.0.0.1', port = {amqp_port} }},
      }}
      return 'confirmed'
    end
    return sender
  end,
}}

kumo.on('init', function()
  kumo.define_spool {{ name = 'data', path = '{spool}/data', kind = 'RocksDB' }}
  kumo.define_spool {{ name = 'meta', path = '{spool}/meta', kind = 'RocksDB' }}
  kumo.configure_local_logs {{ log_dir = '{logs}' }}
  kumo.start_esmtp_listener {{ listen = '127.0.0.1:{smtp_port}', relay_hosts = {{ '127.0.0.1' }} }}
  kumo.start_http_listener {{ listen = '127.0.0.1:{http_port}' }}
end)

kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
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


async def nats_records(port: int) -> list[dict[str, Any]]:
    import nats

    nc = await nats.connect(f"nats://127.0.0.1:{port}")
    try:
        js = nc.jetstream()
        info = await js.stream_info("LOGS")
        out = []
        for seq in range(1, info.state.last_seq + 1):
            msg = await js.get_msg("LOGS", seq)
            out.append(json.loads(msg.data))
        return out
    finally:
        await nc.close()


async def amqp_records(port: int) -> list[dict[str, Any]]:
    import aio_pika

    connection = await aio_pika.connect(host="127.0.0.1", port=port)
    out = []
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(AMQP_QUEUE, durable=True)
        while (message := await queue.get(fail=False)) is not None:
            out.append(json.loads(message.body))
            await message.ack()
    return out


async def test_nats_and_amqp_hooks_deliver_every_local_record_nats_after_an_outage(
    tmp_path: Path,
) -> None:
    import aio_pika
    import nats

    ports = {name: free_port() for name in ("smtp", "http", "closed", "nats")}
    rabbit = start_rabbitmq(tmp_path / "rabbit")
    nats_server = start_nats(tmp_path, ports["nats"])
    kumo: ServeProcess | None = None
    try:
        nc = await nats.connect(f"nats://127.0.0.1:{ports['nats']}")
        await nc.jetstream().add_stream(name="LOGS", subjects=[SUBJECT])
        await nc.close()
        nats_server.stop()  # NATS is down while mail arrives
        connection = await aio_pika.connect(host="127.0.0.1", port=rabbit.port)
        async with connection:
            await (await connection.channel()).declare_queue(AMQP_QUEUE, durable=True)

        logs = tmp_path / "logs"
        policy = tmp_path / "policy.lua"
        policy.write_text(POLICY.format(
            spool=tmp_path / "spool", logs=logs, smtp_port=ports["smtp"],
            http_port=ports["http"], closed_port=ports["closed"], nats_port=ports["nats"],
            amqp_port=rabbit.port, subject=SUBJECT, amqp_queue=AMQP_QUEUE))
        kumo = ServeProcess(policy, tmp_path / "kumocore.log")
        kumo.start()
        await kumo.wait_for_smtp(ports["smtp"])
        await send_messages(ports["smtp"], MESSAGES)

        amqp: list[dict[str, Any]] = []

        async def amqp_has_all() -> bool:
            amqp.extend(await amqp_records(rabbit.port))
            return len(amqp) >= 2 * MESSAGES  # a Reception and a TransientFailure each

        await wait_for(amqp_has_all, 60, "the AMQP hook to deliver")
        await asyncio.sleep(2)  # NATS still down: its hook retries and keeps the records
        nats_server = start_nats(tmp_path, ports["nats"])  # back, with the same stream

        async def nats_has_all() -> bool:
            return len(await nats_records(ports["nats"])) >= 2 * MESSAGES

        await wait_for(nats_has_all, 60, "the NATS hook to drain after the outage")
        local = collections.Counter(record_key(r) for r in hookable_local_records(logs))
        for name, got in (("amqp", amqp), ("nats", await nats_records(ports["nats"]))):
            received = collections.Counter(record_key(r) for r in got)
            duplicates = sum(n - 1 for n in received.values() if n > 1)
            print(f"{name}: local={sum(local.values())} received={len(got)} "
                  f"duplicates={duplicates}")
            assert set(received) == set(local), name
    finally:
        if kumo is not None:
            kumo.stop()
        nats_server.stop()
        rabbit.stop()
