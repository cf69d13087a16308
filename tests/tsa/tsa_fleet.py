"""Two ``kumocore serve`` nodes sharing one ``redis-server``, set up as operators write it.

Each node loads the Lua policy below: the shaping helper with automation
(``setup_with_automation{ publish = {'redis-throttles'}, subscribe = {'redis-throttles'} }``)
over a shaping file the test writes. The sink on 127.0.0.1 answers like a throttling
receiver for some recipients (:class:`ThrottlingSink`).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from bench.common.serve_process import ServeProcess, free_port
from bench.common.sink import RecordingSink, _Handler, _SinkSMTP
from bench.common.smtp_client import RawSmtpClient

DOMAIN = "tsa.test"
MX_HOST = "mx.tsa.test"

POLICY = """
local kumo = require 'kumo'
local shaping = require 'policy-extras.shaping'
local shaper = shaping:setup_with_automation {
  no_default_files = true,
  extra_files = { os.getenv 'TSA_SHAPING' },
  publish = { os.getenv 'TSA_STORE' },
  subscribe = { os.getenv 'TSA_STORE' },
}
kumo.on('init', function()
  local dir = os.getenv 'TSA_DIR'
  kumo.dns.configure_resolver { name_servers = { os.getenv 'TSA_DNS' } }
  if os.getenv 'TSA_STORE' == 'redis-throttles' then
    kumo.configure_redis_throttles { node = os.getenv 'TSA_REDIS' }
  end
  kumo.define_spool { name = 'data', path = dir .. '/spool/data', kind = 'RocksDB' }
  kumo.define_spool { name = 'meta', path = dir .. '/spool/meta', kind = 'RocksDB' }
  kumo.configure_local_logs { log_dir = dir .. '/logs' }
  kumo.start_esmtp_listener { listen = '127.0.0.1:' .. os.getenv 'TSA_SMTP',
                              relay_hosts = { '127.0.0.1' } }
  kumo.start_http_listener { listen = '127.0.0.1:' .. os.getenv 'TSA_HTTP',
                             trusted_hosts = { '127.0.0.1' } }
  shaper.setup_publish()
end)
kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  return kumo.make_queue_config { retry_interval = '1 hour' }
end)
kumo.on('get_egress_path_config', shaper.get_egress_path_config)
"""


def shaping_file(sink_port: int, rules: str, base_rate: str = "100/s") -> str:
    """A shaping file: every path goes to the sink; ``rules`` adds automation.

    The two nodes share the path's ``connection_limit`` through Redis, and an idle
    connection keeps its slot until ``idle_timeout`` (Redis has no "someone waits for
    your slot" signal, as in KumoMTA). With the 5 s default, a node that happened to open
    all four connections first left the other node's messages waiting about 5 s, which
    the timing checks read as a slow path: 1 s keeps that wait below what they measure.
    """
    return (
        '["default"]\n'
        f"smtp_port = {sink_port}\n"
        'enable_tls = "Disabled"\n'
        "prohibited_hosts = []\n"
        f'max_message_rate = "{base_rate}"\n'
        "connection_limit = 4\n"
        'idle_timeout = "1s"\n'
        f"\n{rules}"
    )


class _ThrottlingHandler(_Handler):
    """Recipients ask for a receiver's throttling replies (other ones are accepted)."""

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:  # fmt: skip
        local = address.split("@")[0].lower()
        if "ratelimit" in local:
            self.state.attempts[address] += 1
            return "421 4.7.28 [127.0.0.1] Our system has detected an unusual rate (rate limited)"
        if "ts04" in local:
            self.state.attempts[address] += 1
            return "421 4.7.0 [TS04] Messages from 127.0.0.1 temporarily deferred"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


class ThrottlingSink(RecordingSink):
    async def start(self) -> ThrottlingSink:
        loop = asyncio.get_running_loop()
        handler = _ThrottlingHandler(self.state)
        self._server = await loop.create_server(
            lambda: _SinkSMTP(handler, hostname="sink.test", decode_data=False),
            self.host, self.port)  # fmt: skip
        self.port = self._server.sockets[0].getsockname()[1]
        return self


class Node(ServeProcess):
    """One ``kumocore serve`` process (its own session, so signals reach only it)."""

    def __init__(self, name: str, root: Path, env: dict[str, str]) -> None:
        self.dir = root / name
        self.dir.mkdir(parents=True)
        self.smtp_port, self.http_port = free_port(), free_port()
        policy = self.dir / "policy.lua"
        policy.write_text(POLICY)
        env = {**env, "TSA_DIR": str(self.dir), "TSA_SMTP": str(self.smtp_port),
               "TSA_HTTP": str(self.http_port)}  # fmt: skip
        super().__init__(policy, self.dir / "kumocore.log", env, shutdown_timeout=3, name=name)

    async def wait_ready(self, timeout: float = 30.0) -> None:
        await self.wait_for_log("kumocore ready", timeout=timeout)

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)

    async def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return await asyncio.to_thread(self._api, method, path, body)

    def _api(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}", method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                kind = response.headers.get("Content-Type", "")
                return response.status, json.loads(raw) if "json" in kind else raw.decode()
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    async def actions(self) -> list[dict[str, Any]]:
        status, body = await self.api("GET", "/api/admin/tsa/v1")
        assert status == 200, body
        actions: list[dict[str, Any]] = body["actions"]
        return actions


async def inject(node: Node, recipients: list[str]) -> None:
    client = await RawSmtpClient.connect(node.smtp_port)
    try:
        await client.hello()
        for recipient in recipients:
            body = f"To: <{recipient}>\r\nSubject: {node.name}\r\n\r\nx\r\n"
            _, final = await client.send_mail("s@src.test", [recipient], body)
            assert final.code == 250, f"{node.name}: {final}"
    finally:
        await client.close()


async def wait_until(predicate: Any, timeout: float, what: str) -> float:
    """Poll the async ``predicate`` until true; the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if await predicate():
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")
