"""Reliability section ``loghooks``: a webhook log hook under hostile conditions.

A Lua policy (``policy-extras.log_hooks:new_json``, records in batches of 20) on a real
``kumocore serve`` (the bench's :class:`~bench.reliability.crash.KumoServer`, with a Lua policy
instead of the generated Python one) delivers mail to the bench's sink and its log
records to a webhook run by this section. Cases:

* ``webhook_down_kill9``: the webhook is down while mail arrives and for a while after,
  the server is killed with -9 during the outage and restarted; once the webhook is up,
  every record of the local log must arrive (duplicates counted, none missing);
* ``webhook_500``: the webhook answers 500 to every POST for a while: records are
  retried, none lost, reception unaffected;
* ``should_enqueue_raises``: the ``should_enqueue_log_record`` handler fails for some
  records: reception keeps working (a probe gets 250), the failures are logged.
"""

from __future__ import annotations

import asyncio
import collections
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common.smtp_client import RawSmtpClient
from bench.common.world import CRASH_DOMAIN, free_port
from bench.reliability.bench import Bench, say
from bench.reliability.crash import KumoServer, ServerSpec
from kumocore.logs.reader import iter_records
from kumocore.testing.webhook import RecordingWebhook, record_key

SECTION = "loghooks"

_POLICY = '''\
local kumo = require 'kumo'
local log_hooks = require 'policy-extras.log_hooks'

log_hooks:new_json {{
  name = 'webhook',
  url = 'http://127.0.0.1:{hook_port}/log',
  batch_size = 20,
  max_batch_latency = '100ms',
  queue_config = {{ retry_interval = '1s', max_retry_interval = '2s' }},
}}

kumo.on('should_enqueue_log_record', function(msg, hook_name)
  -- the hostile case: a handler that fails for some records (before the helper's)
  if tostring(msg:recipient()):find('^raise') then error('handler failure') end
  return nil
end)

kumo.on('init', function()
  kumo.dns.configure_resolver {{ name_servers = {{ '{dns}' }}, timeout = 1 }}
  kumo.define_spool {{ name = 'data', path = '{var}/spool/data', kind = 'RocksDB' }}
  kumo.define_spool {{ name = 'meta', path = '{var}/spool/meta', kind = 'RocksDB' }}
  kumo.configure_local_logs {{ log_dir = '{var}/logs' }}
  kumo.start_esmtp_listener {{ listen = '127.0.0.1:{smtp_port}', hostname = 'kumo.rel.test',
    relay_hosts = {{ '127.0.0.1' }} }}
  kumo.start_http_listener {{ listen = '127.0.0.1:{http_port}' }}
end)

kumo.on('get_egress_path_config', function(domain, source, site)
  return kumo.make_egress_path {{ smtp_port = {sink_port}, prohibited_hosts = {{}},
    idle_timeout = 1 }}
end)

kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  return kumo.make_queue_config {{ retry_interval = '1s', max_retry_interval = '2s' }}
end)
'''


class LuaHookServer(KumoServer):
    """The bench's server process, running this section's Lua policy."""

    def __init__(self, spec: ServerSpec, workdir: str, hook_port: int, http_port: int) -> None:
        self.hook_port, self.http_port = hook_port, http_port  # before the policy is written
        super().__init__(spec, workdir)

    def write_policy(self) -> None:
        self.policy = self.workdir / "policy.lua"
        self.policy.write_text(_POLICY.format(
            hook_port=self.hook_port, http_port=self.http_port, dns=self.spec.dns,
            var=self.var, smtp_port=self.spec.smtp_port, sink_port=self.spec.sink_port))


async def _send(port: int, prefix: str, count: int) -> int:
    client = await RawSmtpClient.connect(port)
    await client.hello()
    accepted = 0
    for index in range(count):
        _, final = await client.send_mail(
            "bench@kumo.rel.test", [f"{prefix}{index}@{CRASH_DOMAIN}"],
            f"Subject: hook {index}\r\n\r\nbody\r\n")
        accepted += final.code == 250
    await client.close()
    return accepted


def _local(log_dir: Path) -> collections.Counter[str]:
    return collections.Counter(
        record_key(r) for r in iter_records(log_dir)
        if r.get("reception_protocol") != "LogRecord")


async def _until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.25)
    return bool(predicate())


async def section_loghooks(bench: Bench) -> None:
    figures = bench.figures.setdefault(SECTION, {})
    messages = 200 if bench.mode.load_seconds < 5 else 1000
    hook = RecordingWebhook(free_port())
    spec = ServerSpec(dns=bench.world.dns.address, sink_port=bench.world.sink.port)
    server = LuaHookServer(spec, tempfile.mkdtemp(dir=bench.workdir), hook.port, free_port())
    bench.servers.append(server)
    server.start()

    # 1. webhook down under load, kill -9 during the outage, then up.
    sent = sum(await asyncio.gather(*(_send(server.port, f"hook{n}-", messages // 4)
                                      for n in range(4))))
    await asyncio.sleep(3)  # outage: the hook's records wait and are retried
    server.kill()
    server.start()
    await hook.start()
    try:
        ok = await _until(lambda: set(_local(server.log_dir)) <= set(hook.counts())
                          and len(_local(server.log_dir)) >= 2 * sent, 90)
        local = _local(server.log_dir)
        missing = len(set(local) - set(hook.counts()))
        duplicates = sum(n - 1 for n in hook.counts().values() if n > 1)
        figures.update(accepted=sent, local_records=sum(local.values()),
                       hook_records=len(hook.records), missing=missing,
                       duplicates=duplicates, posts=hook.posts)
        bench.hostile(SECTION, "webhook_down_kill9", ok and missing == 0 and sent == messages,
                      f"accepted {sent}/{messages}, missing {missing} records")

        # 2. the webhook fails with 500 for a while: retried, nothing lost.
        hook.failing = True
        sent2 = await _send(server.port, "fail-", 40)
        await _until(lambda: hook.refused >= 3, 20)
        hook.failing = False
        ok = await _until(lambda: set(_local(server.log_dir)) <= set(hook.counts()), 60)
        figures.update(refused_posts=hook.refused)
        bench.hostile(SECTION, "webhook_500", ok and sent2 == 40,
                      f"accepted {sent2}/40; records missing after the 500s")

        # 3. a should_enqueue_log_record handler that raises: reception goes on.
        sent3 = await _send(server.port, "raise-", 10)
        probe = bench.probe_ok(server, SECTION, "failing should_enqueue_log_record")
        bench.hostile(SECTION, "should_enqueue_raises", sent3 == 10 and probe,
                      f"accepted {sent3}/10, probe {'ok' if probe else 'failed'}")
    finally:
        await hook.stop()
    say(f"loghooks: {figures}")
