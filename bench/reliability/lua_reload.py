"""Reliability section ``lua_reload``: hostile changes to a running Lua policy's files.

A real ``kumocore serve`` runs a Lua policy that memoizes a TOML data file (with
``invalidate_with_epoch``) and monitors it with ``kumo.set_config_monitor_globs``. While it
serves, the bench breaks what the configuration monitor watches — the data file becomes
invalid TOML, disappears, the policy file becomes a syntax error, both change many times a
second — and checks after each that the server still accepts and delivers a normal
message, that a message whose handler needs the broken data gets a clear refusal (never a
250 that is then lost), and that a repaired file takes effect without a restart.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from bench.common.client import wait_until
from bench.common.server import KumoServer
from bench.common.server_policy import ServerSpec
from bench.reliability import abuse
from bench.reliability.bench import Bench

SECTION = "lua_reload"

# The Lua twin of the bench's generated Python policy (bench/common/server_policy.py), plus a
# memoized data file that decides each message's X-Tier meta.
_POLICY = """\
local kumo = require 'kumo'
local CFG = kumo.serde.json_parse [==[{config}]==]

local load_tiers = kumo.memoize(kumo.toml_load, {{
  name = 'tiers', ttl = '1 hour', capacity = 4, invalidate_with_epoch = true }})

kumo.on('init', function()
  kumo.set_config_monitor_globs {{ CFG.data }}
  kumo.dns.configure_resolver {{ name_servers = {{ CFG.dns }}, timeout = CFG.dns_timeout }}
  kumo.define_spool {{ name = 'data', path = CFG.var .. '/spool/data', kind = 'RocksDB' }}
  kumo.define_spool {{ name = 'meta', path = CFG.var .. '/spool/meta', kind = 'RocksDB' }}
  kumo.configure_local_logs {{ log_dir = CFG.var .. '/logs' }}
  local listener = CFG.listener
  listener.listen = '127.0.0.1:' .. CFG.smtp_port
  kumo.start_esmtp_listener(listener)
end)

kumo.on('smtp_server_message_received', function(msg)
  local tiers = load_tiers(CFG.data)
  msg:set_meta('tier', tiers.tier.name)
end)

kumo.on('get_egress_path_config', function()
  return kumo.make_egress_path {{
    smtp_port = CFG.sink_port, prohibited_hosts = {{}}, idle_timeout = '1s' }}
end)

kumo.on('get_queue_config', function()
  return kumo.make_queue_config {{ retry_interval = '1s', max_retry_interval = '2s' }}
end)
"""


class LuaServer(KumoServer):
    """The bench's server, running the Lua policy above instead of the Python one."""

    def __init__(self, spec: ServerSpec, workdir: Path | str) -> None:
        self.data = Path(workdir) / "tiers.toml"
        super().__init__(spec, workdir)
        self.policy.unlink(missing_ok=True)
        self.policy = self.workdir / "policy.lua"
        self.write_policy()

    def write_policy(self) -> None:
        if self.policy.suffix != ".lua":
            return  # KumoServer.__init__ calls this before the Lua path is set
        config = {
            "var": str(self.var), "dns": self.spec.dns, "dns_timeout": self.spec.dns_timeout,
            "sink_port": self.spec.sink_port, "smtp_port": self.spec.smtp_port,
            "listener": self.spec.listener, "data": str(self.data),
        }  # fmt: skip
        self.policy.write_text(_POLICY.format(config=json.dumps(config)))


def _tier_reply(bench: Bench, server: LuaServer) -> int | None:
    """The final reply code for one message whose handler reads the data file."""
    try:
        return abuse.probe(server.port, f"ok.{bench.tag('tier')}@crash.test").code
    except (OSError, ConnectionError, abuse.ProtocolViolation):
        return None


def _serves(bench: Bench, server: LuaServer, timeout: float = 8.0) -> bool:
    """The server answers 250 again within ``timeout`` (the monitor polls every 2 s)."""
    return server.alive and wait_until(lambda: _tier_reply(bench, server) == 250, timeout, 0.5)


def section_lua_reload(bench: Bench) -> None:
    for domain in ("crash.test",):
        bench.world.dns.set_records(domain, "MX", [(10, f"mx.{domain}")])
        bench.world.dns.set_records(f"mx.{domain}", "A", ["127.0.0.1"])
    spec = ServerSpec(dns=bench.world.dns.address, sink_port=bench.world.sink.port)
    server = LuaServer(spec, tempfile.mkdtemp(dir=bench.workdir))
    server.data.write_text('[tier]\nname = "gold"\n')
    bench.servers.append(server)
    server.start()
    figures: dict[str, float] = {}
    bench.probe_ok(server, SECTION, "start")

    # 1. data file becomes invalid TOML: refusals are clear (4xx/5xx), never a lost 250
    server.data.write_text("[tier\nname = = broken\n")
    time.sleep(3)
    code = _tier_reply(bench, server)
    figures["reply_with_invalid_data"] = code or 0
    bench.hostile(SECTION, "data file replaced by invalid TOML while serving",
                  server.alive and code is not None and code >= 400,
                  f"reply {code}, alive={server.alive}")
    server.data.write_text('[tier]\nname = "silver"\n')
    bench.hostile(SECTION, "service resumes once the data file is repaired, without restart",
                  _serves(bench, server), server.log_tail(800))

    # 2. data file deleted, then restored
    server.data.unlink()
    time.sleep(3)
    code = _tier_reply(bench, server)
    figures["reply_with_deleted_data"] = code or 0
    bench.hostile(SECTION, "data file deleted while serving",
                  server.alive and code is not None and code >= 400, f"reply {code}")
    server.data.write_text('[tier]\nname = "gold"\n')
    bench.hostile(SECTION, "restored data file is picked up", _serves(bench, server))

    # 3. the policy file becomes a syntax error: the running handlers stay
    good_policy = server.policy.read_text()
    server.policy.write_text("local kumo = require 'kumo'\nkumo.on('init', function(\n")
    time.sleep(3)
    bench.hostile(SECTION, "policy file replaced by a syntax error while serving",
                  server.alive and _tier_reply(bench, server) == 250, server.log_tail(800))
    server.policy.write_text(good_policy)

    # 4. a storm of changes: 100 rewrites in ~2 s must not pile up reloads or stop service
    started = time.monotonic()
    for i in range(100):
        server.data.write_text(f'[tier]\nname = "storm{i}"\n')
        time.sleep(0.02)
    figures["storm_seconds"] = round(time.monotonic() - started, 2)
    rss_before = server.rss_kib()
    bench.hostile(SECTION, "100 data file rewrites in 2 s", _serves(bench, server))
    figures["rss_kib_after_storm"] = server.rss_kib()
    figures["rss_kib_before_probe"] = rss_before
    bench.probe_ok(server, SECTION, "all cases")
    server.terminate()
    bench.figures[SECTION] = figures
