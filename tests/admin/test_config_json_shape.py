"""``queue_config`` and ``path_config`` in ``resolve-egress-path`` answers are KumoMTA's
serde form of the configurations: durations as humantime text, a connection limit as
``{limit, force_local}``, CIDR lists as KumoMTA's set holds them, ``protocol`` with SMTP's
defaults, the options KumoMTA does not serialise left out, fields in KumoMTA's order.
Expected values are worked out by hand from the policy below."""

from __future__ import annotations

from typing import Any

from kumocore.testing.plugin import MakeNode

RESOLVE = "/api/admin/resolve-egress-path/v1"

POLICY = """
local kumo = require 'kumo'
kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  return kumo.make_queue_config { retry_interval = 90, max_age = '36h' }
end)
kumo.on('get_egress_path_config', function(domain, source, site)
  return kumo.make_egress_path {
    connection_limit = 'local:6',
    additional_connection_limits = { shared = 2 },
    idle_timeout = 0.25,
    prohibited_hosts = { '::1', '10.1.0.0/17', '10.1.128.0/17', '::' },
  }
end)
"""


async def _answer(make_node: MakeNode) -> dict[str, Any]:
    node = await make_node(POLICY)
    status, answer = await node.admin("GET", f"{RESOLVE}?domain=example.com&source=s1")
    assert status == 200, answer
    return dict(answer)


async def test_path_config_json_is_kumomtas_serde_form(make_node: MakeNode) -> None:
    path = (await _answer(make_node))["path_config"]
    assert path["connection_limit"] == {"limit": 6, "force_local": True}
    assert path["additional_connection_limits"] == {"shared": {"limit": 2, "force_local": False}}
    assert (path["idle_timeout"], path["connect_timeout"], path["ehlo_timeout"]) == (
        "250ms",
        "1m",
        "5m",
    )
    # The two /17 halves are one /16; '::' and '::1' are the two halves of '::/127'.
    assert path["prohibited_hosts"] == ["10.1.0.0/16", "::/127"]
    assert "openssl_options" not in path and "rustls_cipher_suites" not in path
    keys = list(path)
    assert keys[:3] == ["connection_limit", "additional_connection_limits", "enable_tls"]
    assert keys.index("auth_timeout") + 1 == keys.index("system_shutdown_timeout")
    assert keys[-1] == "dispatcher_progress_watchdog_timeout"


async def test_queue_config_json_is_kumomtas_serde_form(make_node: MakeNode) -> None:
    queue = (await _answer(make_node))["queue_config"]
    assert queue == {
        "retry_interval": "1m 30s",
        "max_retry_interval": None,
        "max_age": "1day 12h",
        "egress_pool": None,
        "max_message_rate": None,
        "protocol": {"smtp": {"mx_list": [], "treat_mx_list_as_secure": False}},
        "reap_interval": "10m",
        "refresh_interval": "1m",
        "timerwheel_tick_interval": None,
        "strategy": "SingletonTimerWheel",
        "refresh_strategy": "Ttl",
        "provider_name": None,
        "shrink_policy": [],
    }
    assert list(queue)[8:11] == ["timerwheel_tick_interval", "strategy", "refresh_strategy"]
