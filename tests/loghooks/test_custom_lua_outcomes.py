"""custom_lua outcomes on a real ``kumocore serve``: a sender's ``kumo.reject(5xx)``
bounces the hook message (logged as a Bounce of a ``LogRecord`` message, never hooked
again), and a queue whose constructor event is missing defers its messages with a
response that names the missing event (nothing is lost)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.common.serve_process import ServeProcess, free_port
from kumocore.logs.reader import iter_records
from tests.loghooks.test_webhook_durability import send_messages, wait_for

pytestmark = pytest.mark.slow

POLICY = '''
local kumo = require 'kumo'

kumo.on('init', function()
  kumo.define_spool {{ name = 'data', path = '{spool}/data', kind = 'RocksDB' }}
  kumo.define_spool {{ name = 'meta', path = '{spool}/meta', kind = 'RocksDB' }}
  kumo.configure_local_logs {{ log_dir = '{logs}' }}
  kumo.configure_log_hook {{ name = 'strict', per_record = {{ Any = {{ enable = false }},
    Reception = {{ enable = true }} }} }}
  kumo.start_esmtp_listener {{ listen = '127.0.0.1:{smtp_port}', relay_hosts = {{ '127.0.0.1' }} }}
end)

kumo.on('should_enqueue_log_record', function(msg, hook_name)
  msg:set_meta('queue', 'strict.hook')
  return true
end)

kumo.on('make.strict', function(domain, tenant, campaign)
  local sender = {{}}
  function sender:send(msg)
    local record = msg:get_meta 'log_record'
    if record.recipient:find('^perm') then kumo.reject(550, 'refused by the target') end
    return 'taken for ' .. domain
  end
  return sender
end)

kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  if domain == 'strict.hook' then
    return kumo.make_queue_config {{
      protocol = {{ custom_lua = {{ constructor = 'make.strict' }} }},
    }}
  end
  -- ordinary mail: a custom_lua constructor nobody registered
  return kumo.make_queue_config {{ retry_interval = '1h',
    protocol = {{ custom_lua = {{ constructor = 'make.missing' }} }} }}
end)
'''


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[ServeProcess, int, Path]]:
    smtp_port = free_port()
    logs = tmp_path / "logs"
    policy = tmp_path / "policy.lua"
    policy.write_text(POLICY.format(spool=tmp_path / "spool", logs=logs, smtp_port=smtp_port))
    kumo = ServeProcess(policy, tmp_path / "kumocore.log")
    yield kumo, smtp_port, logs
    kumo.stop()


async def test_reject_5xx_bounces_the_hook_record_and_a_missing_constructor_defers(
    deployment: tuple[ServeProcess, int, Path],
) -> None:
    kumo, smtp_port, logs = deployment
    kumo.start()
    await kumo.wait_for_smtp(smtp_port)
    await send_messages(smtp_port, 2, "perm-")
    await send_messages(smtp_port, 2, "fine-")

    def records() -> list[dict[str, Any]]:
        return list(iter_records(logs))

    async def settled() -> bool:
        hooked = [r for r in records() if r.get("reception_protocol") == "LogRecord"]
        mail = [r for r in records() if r["type"] == "TransientFailure"
                and r.get("reception_protocol") != "LogRecord"]
        return len(hooked) >= 4 and len(mail) >= 4

    await wait_for(settled, 60, "hook outcomes and deferred mail")
    hooked = [r for r in records() if r.get("reception_protocol") == "LogRecord"]
    by_type = {(r["type"], r["recipient"].split("-")[0]) for r in hooked}
    assert by_type == {("Bounce", "perm"), ("Delivery", "fine")}
    bounce = next(r for r in hooked if r["type"] == "Bounce")
    assert bounce["response"]["code"] == 550
    assert "refused by the target" in bounce["response"]["content"]
    delivery = next(r for r in hooked if r["type"] == "Delivery")
    assert delivery["response"]["content"] == "taken for strict.hook"
    assert delivery["queue"] == "strict.hook" and "@lua:make.strict" in delivery["site"]
    # KumoMTA's records of a custom_lua delivery say so (they said ESMTP).
    assert delivery["delivery_protocol"] == bounce["delivery_protocol"] == "Lua"
    # only Reception records are enabled for the hook, and hook records are not hooked
    assert all(r["type"] in ("Reception", "TransientFailure", "Bounce", "Delivery")
               for r in records())
    deferred = [r for r in records() if r["type"] == "TransientFailure"]
    assert len(deferred) == 4
    assert all("'make.missing'" in r["response"]["content"] for r in deferred)
    # As KumoMTA: a constructor that fails is a failed connection (400, internal).
    assert all(r["response"]["code"] == 400 for r in deferred)
    assert all(r["response"]["content"].startswith(
        "KumoMTA internal: failed to connect to any candidate hosts: ") for r in deferred)
