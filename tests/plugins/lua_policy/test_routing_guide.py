"""A policy in the style of KumoMTA's routing guide, run by a real ``kumocore serve``:
a smarthost through the ``queue`` meta, a ``routing_domain`` meta, and an ``mx_list``
whose first host is down and whose second takes mail only with AUTH over STARTTLS.
Each message is proven at the receiver the policy names, and nowhere else."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bench.common.auth_mx import AuthMx
from bench.common.redis_server import free_port
from bench.common.sink import RecordingSink
from tests.plugins.lua_policy.helpers.support import Served, message, send

POLICY = """
local kumo = require 'kumo'

kumo.on('init', function()
  kumo.define_spool { name = 'data', path = '{root}/spool/data' }
  kumo.define_spool { name = 'meta', path = '{root}/spool/meta' }
  kumo.start_esmtp_listener { listen = '127.0.0.1:{port}', relay_hosts = { '127.0.0.1' } }
end)

kumo.on('smtp_server_message_received', function(msg)
  local domain = msg:recipient().domain
  if domain == 'smarthosted.example' then
    -- everything for this domain goes through the smarthost at 127.0.0.2
    msg:set_meta('queue', '[127.0.0.2]')
  elseif domain == 'routed.example' then
    -- keep the queue per domain, but route it like 127.0.0.6
    msg:set_meta('routing_domain', '[127.0.0.6]')
  end
end)

kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  if domain == 'listed.example' then
    return kumo.make_queue_config {
      retry_interval = '1s',
      protocol = { smtp = { mx_list = {
        '[127.0.0.3]:9',  -- down
        { name = 'mx.auth.test', addr = '127.0.0.4:{auth_port}' },
      } } },
    }
  end
  return kumo.make_queue_config { retry_interval = '1s' }
end)

kumo.on('get_egress_path_config', function(domain, source_name, site_name)
  if site_name:sub(1, 8) == 'mx_list:' then
    return kumo.make_egress_path {
      enable_tls = 'Required',
      smtp_auth_plain_username = 'alice',
      smtp_auth_plain_password = { key_data = 's3cret' },
      prohibited_hosts = {},
    }
  end
  return kumo.make_egress_path { smtp_port = {sink_port}, prohibited_hosts = {} }
end)
"""


async def _until(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_routing_guide_policy_delivers_where_it_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    smarthost = await RecordingSink(host="127.0.0.2").start()
    routed = await RecordingSink(host="127.0.0.6", port=smarthost.port).start()
    auth_mx = await AuthMx("127.0.0.4", "mx.auth.test", {"alice": "s3cret"}, tmp_path).start()
    monkeypatch.setenv("SSL_CERT_FILE", str(auth_mx.ca_file))  # inherited by kumocore
    port = free_port()
    etc = tmp_path / "etc" / "policy"
    etc.mkdir(parents=True)
    policy = etc / "routing.lua"
    text = POLICY
    for key, value in {"root": tmp_path, "port": port, "auth_port": auth_mx.port,
                       "sink_port": smarthost.port}.items():
        text = text.replace("{" + key + "}", str(value))
    policy.write_text(text)
    served = await asyncio.to_thread(Served(policy, port).start)
    try:
        for rcpt in ("a@smarthosted.example", "b@routed.example", "c@listed.example"):
            code, _ = await asyncio.to_thread(
                send, port, "sender@src.test", rcpt, message("sender@src.test", rcpt, rcpt))
            assert code == 250
        await _until(lambda: smarthost.messages and routed.messages and auth_mx.state.messages)
    finally:
        await asyncio.to_thread(served.stop)
        for server in (smarthost, routed, auth_mx):
            await server.stop()
    assert [m.recipient for m in smarthost.messages] == ["a@smarthosted.example"]
    assert [m.recipient for m in routed.messages] == ["b@routed.example"]
    assert [(m[1], m[3]) for m in auth_mx.state.messages] == [("c@listed.example", "alice")]
    assert auth_mx.state.auth_attempts == [("alice", True)]
