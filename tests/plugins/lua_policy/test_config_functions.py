"""kumo.invoke_get_queue_config / _egress_path_config / _egress_pool / _egress_source,
kumo.format_*_toml and kumo.compute_*_constraints through a real Lua policy.

Every expected table, TOML text and ceilings block is worked out here by hand from the
policy's options by KumoMTA's rules (serde: durations as humantime text, a limit as
``{limit, force_local}``; toml_encode_pretty_compact: keys sorted, empty tables inline;
EffectiveConstraints), not by calling kumocore. Tables come back from Lua, so a nil
value is an absent key and an empty table is ``{}``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from kumocore import PolicyError
from kumocore.policy.config_functions import MAX_NESTING
from kumocore.testing.plugin import MakeNode

from .support import load

POLICY = """\
local kumo = require 'kumo'
local calls = { source = 0, pool = 0 }
kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  if domain == 'loop.test' then
    kumo.invoke_get_queue_config('loop.test')  -- asks for its own answer
  end
  if domain == 'default.test' then return nil end
  local depth = tonumber(domain:match('^chain(%d+)%.test$'))
  if depth and depth > 0 then  -- one more nested lookup per level
    kumo.invoke_get_queue_config('chain' .. (depth - 1) .. '.test')
  end
  return kumo.make_queue_config {
    egress_pool = string.format('%s|%s|%s|%s', campaign, tenant, domain, routing_domain),
    retry_interval = '90s',
    max_age = '2 days',
    max_message_rate = '50/s',
  }
end)
kumo.on('get_egress_path_config', function(domain, source, site)
  if domain == 'default.test' then return nil end
  return kumo.make_egress_path {
    connection_limit = 'local:8',
    additional_connection_limits = { shared = 4 },
    max_message_rate = '1000/s',
    max_connection_rate = '10/s',
    max_deliveries_per_connection = 10,
    idle_timeout = 1.5,
    prohibited_hosts = { '10.0.0.128/25', '10.0.0.0/25', '192.0.2.1', '10.0.0.7' },
    ehlo_domain = site .. '.' .. source .. '.' .. domain,
  }
end)
kumo.on('get_egress_pool', function(name)
  calls.pool = calls.pool + 1
  if name == 'pool-a' then
    return kumo.make_egress_pool {
      name = name, entries = { { name = 'ip-1', weight = 2 }, { name = 'ip-2' } } }
  end
  if name == 'broken' then
    return kumo.make_egress_pool { name = name, entries = { { name = 'ghost' } } }
  end
end)
kumo.on('get_egress_source', function(name)
  calls.source = calls.source + 1
  if name == 'ip-1' or name == 'ip-2' then
    return kumo.make_egress_source {
      name = name, source_address = '127.0.10.1', ttl = '5m' }
  end
end)
kumo.on('make.calls', function() return calls end)
kumo.on('make.call', function(name, ...) return kumo[name](...) end)
"""

#: The path the policy answers for ('gmail.com', 'ip-1', 'site'), as KumoMTA serialises it.
PATH_TABLE = {
    "connection_limit": {"limit": 8, "force_local": True},
    "additional_connection_limits": {"shared": {"limit": 4, "force_local": False}},
    "enable_tls": "Opportunistic", "enable_mta_sts": True, "enable_dane": False,
    "enable_pipelining": True, "enable_rset": True, "tls_prefer_openssl": False,
    "connect_timeout": "1m", "banner_timeout": "1m", "ehlo_timeout": "5m",
    "mail_from_timeout": "5m", "rcpt_to_timeout": "5m", "data_timeout": "5m",
    "data_dot_timeout": "5m", "rset_timeout": "5s", "idle_timeout": "1s 500ms",
    "starttls_timeout": "5s", "auth_timeout": "1m", "max_ready": 1024,
    "consecutive_connection_failures_before_delay": 100, "smtp_port": 25,
    "allow_smtp_auth_plain_without_tls": False,
    "allow_smtp_auth_plain_without_valid_certificate": False,
    "max_message_rate": "1000/s", "additional_message_rate_throttles": {},
    "additional_source_selection_rates": {}, "max_connection_rate": "10/s",
    "max_deliveries_per_connection": 10, "max_recipients_per_batch": 100,
    # The two halves merge, 10.0.0.7 lies inside them, IPv4 in address order.
    "prohibited_hosts": ["10.0.0.0/24", "192.0.2.1"], "skip_hosts": {},
    "ip_lookup_strategy": "Ipv4AndIpv6", "ehlo_domain": "site.ip-1.gmail.com",
    "aggressive_connection_opening": False, "refresh_interval": "1m",
    "refresh_strategy": "Ttl", "dispatcher_wakeup_strategy": "Aggressive",
    "maintainer_wakeup_strategy": "Aggressive",
    "opportunistic_tls_reconnect_on_failed_handshake": False, "use_lmtp": False,
    "reconnect_strategy": "ConnectNextHost", "low_memory_reduction_policy": "ShrinkDataAndMeta",
    "no_memory_reduction_policy": "ShrinkDataAndMeta",
    "try_next_host_on_transport_error": False, "ignore_8bit_checks": False,
}  # fmt: skip

#: KumoMTA's defaults for a path nobody configured, as compact TOML (keys sorted, nulls
#: left out, empty tables inline, the limit struct as a table after the values).
DEFAULT_PATH_TOML = """\
additional_connection_limits = {}
additional_message_rate_throttles = {}
additional_source_selection_rates = {}
aggressive_connection_opening = false
allow_smtp_auth_plain_without_tls = false
allow_smtp_auth_plain_without_valid_certificate = false
auth_timeout = "1m"
banner_timeout = "1m"
connect_timeout = "1m"
consecutive_connection_failures_before_delay = 100
data_dot_timeout = "5m"
data_timeout = "5m"
dispatcher_wakeup_strategy = "Aggressive"
ehlo_timeout = "5m"
enable_dane = false
enable_mta_sts = true
enable_pipelining = true
enable_rset = true
enable_tls = "Opportunistic"
idle_timeout = "5s"
ignore_8bit_checks = false
ip_lookup_strategy = "Ipv4AndIpv6"
low_memory_reduction_policy = "ShrinkDataAndMeta"
mail_from_timeout = "5m"
maintainer_wakeup_strategy = "Aggressive"
max_deliveries_per_connection = 1024
max_ready = 1024
max_recipients_per_batch = 100
no_memory_reduction_policy = "ShrinkDataAndMeta"
opportunistic_tls_reconnect_on_failed_handshake = false
prohibited_hosts = ["0.0.0.0", "127.0.0.0/8", "::/127"]
rcpt_to_timeout = "5m"
reconnect_strategy = "ConnectNextHost"
refresh_interval = "1m"
refresh_strategy = "Ttl"
rset_timeout = "5s"
skip_hosts = []
smtp_port = 25
starttls_timeout = "5s"
tls_prefer_openssl = false
try_next_host_on_transport_error = false
use_lmtp = false

[connection_limit]
force_local = false
limit = 32
"""

#: The docs' example: 32 dispatchers, 10 deliveries x 10 connections/s caps the declared
#: 1000/s at 100/s.
DOCS_PATH = "{ max_deliveries_per_connection = 10, max_connection_rate = '10/s', " \
            "max_message_rate = '1000/s' }"  # fmt: skip
DOCS_CONSTRAINTS = {
    "max_concurrent_dispatchers": {"value": 32, "source": {"kind": "primary"}, "display": "32"},
    "max_message_rate": {"value": 100, "source": {"kind": "reconnect_cycling"},
                         "display": "10 \u00d7 10/s = 100/s"},
    "max_message_rate_declared": "1000/s",
    "max_connection_rate": {"value": 10, "source": {"kind": "primary"}, "display": "10/s"},
}  # fmt: skip
DOCS_CEILINGS = """\
ceilings:
  concurrent dispatchers: 32
    source: connection_limit
  message rate:           10 \u00d7 10/s = 100/s
    source: max_deliveries_per_connection \u00d7 max_connection_rate
    declared: max_message_rate = 1000/s \u2190 effectively unreachable
  connection rate:        10/s
    source: max_connection_rate
"""
QUEUE_RATE = {"kind": "other", "name": "scheduled queue max_message_rate"}


async def _policy(tmp_path: Path, extra: str = "") -> tuple[Any, Any]:
    return await load(tmp_path, POLICY + extra)


async def _call(policy: Any, name: str, *args: Any) -> Any:
    return await policy.call_custom_event("make.call", name, *args)


# ------------------------------------------------------------------ invoke_get_*
async def test_queue_config_is_asked_with_the_parts_of_the_name_and_is_a_plain_table(
    tmp_path: Path,
) -> None:
    _, policy = await _policy(tmp_path)
    table = await _call(policy, "invoke_get_queue_config", "spring:t1@example.com!relay.test")
    assert table == {
        "retry_interval": "1m 30s", "max_age": "2days",
        "egress_pool": "spring|t1|example.com|relay.test", "max_message_rate": "50/s",
        "protocol": {"smtp": {"mx_list": {}, "treat_mx_list_as_secure": False}},
        "reap_interval": "10m", "refresh_interval": "1m", "strategy": "SingletonTimerWheel",
        "refresh_strategy": "Ttl", "shrink_policy": {},
    }  # fmt: skip
    bare = await _call(policy, "invoke_get_queue_config", "example.com")
    assert bare["egress_pool"] == "nil|nil|example.com|nil"


async def test_no_handler_answer_gives_kumomtas_default_queue_and_path(tmp_path: Path) -> None:
    _, policy = await _policy(tmp_path)
    queue = await _call(policy, "invoke_get_queue_config", "default.test")
    assert (queue["retry_interval"], queue["max_age"], "egress_pool" in queue) == (
        "20m",
        "7days",
        False,
    )
    path = await _call(policy, "invoke_get_egress_path_config", "default.test", "s", "site")
    assert path["connection_limit"] == {"limit": 32, "force_local": False}
    assert path["prohibited_hosts"] == ["0.0.0.0", "127.0.0.0/8", "::/127"]


async def test_a_queue_name_without_a_domain_is_refused(tmp_path: Path) -> None:
    _, policy = await _policy(tmp_path)
    for name in ("", "campaign:tenant@", "tenant@!relay.test"):
        with pytest.raises(PolicyError, match=f"queue name '{name}' has no domain"):
            await _call(policy, "invoke_get_queue_config", name)


async def test_path_config_is_the_policys_answer_as_a_plain_table(tmp_path: Path) -> None:
    _, policy = await _policy(tmp_path)
    table = await _call(policy, "invoke_get_egress_path_config", "gmail.com", "ip-1", "site")
    assert table == PATH_TABLE


async def test_pool_and_source_tables_and_the_built_in_unspecified(tmp_path: Path) -> None:
    _, policy = await _policy(tmp_path)
    assert await _call(policy, "invoke_get_egress_pool", "pool-a") == {
        "name": "pool-a",
        "ttl": "1m",
        "entries": [{"name": "ip-1", "weight": 2}, {"name": "ip-2", "weight": 1}],
    }
    unspecified = {"name": "unspecified", "ttl": "1m",
                   "entries": [{"name": "unspecified", "weight": 1}]}  # fmt: skip
    assert await _call(policy, "invoke_get_egress_pool") == unspecified
    assert await _call(policy, "invoke_get_egress_source", "ip-2") == {
        "name": "ip-2",
        "source_address": "127.0.10.1",
        "ttl": "5m",
    }
    assert await _call(policy, "invoke_get_egress_source", "unspecified") == {
        "name": "unspecified",
        "ttl": "1m",
    }


async def test_unknown_pool_source_or_a_pool_with_an_unknown_source_is_an_error(
    tmp_path: Path,
) -> None:
    _, policy = await _policy(tmp_path)
    unknown_pool = "resolving egress pool 'nope': egress pool 'nope' is not defined"
    with pytest.raises(PolicyError, match=unknown_pool):
        await _call(policy, "invoke_get_egress_pool", "nope")
    ghost = ("resolving egress pool 'broken': get_egress_source 'ghost': egress source "
             "'ghost' is not defined")  # fmt: skip
    with pytest.raises(PolicyError, match=ghost):
        await _call(policy, "invoke_get_egress_pool", "broken")
    unknown_source = "get_egress_source 'nope': egress source 'nope' is not defined"
    with pytest.raises(PolicyError, match=unknown_source):
        await _call(policy, "invoke_get_egress_source", "nope")


async def test_without_a_running_node_every_call_asks_the_handlers(tmp_path: Path) -> None:
    _, policy = await _policy(tmp_path)
    for _ in range(2):
        await _call(policy, "invoke_get_egress_pool", "pool-a")
    # Each pool lookup asks for the pool and checks its two sources.
    assert await policy.call_custom_event("make.calls") == {"pool": 2, "source": 4}


async def test_a_running_node_answers_from_routings_cache(make_node: MakeNode) -> None:
    node = await make_node(POLICY)
    policy = node.runtime.pm.get_plugin("policy")
    for _ in range(3):
        await _call(policy, "invoke_get_egress_pool", "pool-a")
        await _call(policy, "invoke_get_egress_source", "ip-1")
    # Kept for their ttl (pool 60 s, sources 5 m): asked once each.
    assert await policy.call_custom_event("make.calls") == {"pool": 1, "source": 2}
    router = node.runtime.services.queues.router  # type: ignore[union-attr]
    assert (await router.sources.get("ip-1")) is not None
    assert await policy.call_custom_event("make.calls") == {"pool": 1, "source": 2}


async def test_a_handler_asking_for_its_own_answer_ends_with_a_clear_error(
    tmp_path: Path,
) -> None:
    _, policy = await _policy(tmp_path)
    with pytest.raises(PolicyError) as caught:
        await _call(policy, "invoke_get_queue_config", "loop.test")
    text = str(caught.value)
    assert text.endswith(f"{MAX_NESTING} nested lookups; does a queue_config handler call "
                         "kumo.invoke_get_queue_config for itself?")  # fmt: skip
    # Each nested handler is named once, at the line that recursed.
    assert text.count("policy.lua:5:") == MAX_NESTING
    # The guard is released: the next lookup works.
    ok = await _call(policy, "invoke_get_queue_config", "fine.test")
    assert ok["max_age"] == "2days"


async def test_lookups_nest_up_to_the_bound_and_not_past_it(tmp_path: Path) -> None:
    _, policy = await _policy(tmp_path)
    # chainN asks for chain(N-1): N + 1 nested lookups in all.
    deepest = await _call(policy, "invoke_get_queue_config", f"chain{MAX_NESTING - 1}.test")
    assert deepest["max_age"] == "2days"
    with pytest.raises(PolicyError, match=f"{MAX_NESTING} nested lookups"):
        await _call(policy, "invoke_get_queue_config", f"chain{MAX_NESTING}.test")


# ------------------------------------------------------------------ TOML
async def test_default_path_toml_is_kumomtas_compact_toml_and_parses_back(
    tmp_path: Path,
) -> None:
    _, policy = await _policy(
        tmp_path,
        """
kumo.on('make.default_toml', function()
  return kumo.format_egress_path_config_toml(
    kumo.invoke_get_egress_path_config('default.test', 's', 'site'))
end)
kumo.on('make.round_trip', function(text)
  return kumo.format_egress_path_config_toml(
    kumo.make_egress_path(kumo.serde.toml_parse(text)))
end)
""",
    )
    text = await policy.call_custom_event("make.default_toml")
    assert text == DEFAULT_PATH_TOML
    assert tomllib.loads(text)["connection_limit"] == {"force_local": False, "limit": 32}
    assert await policy.call_custom_event("make.round_trip", text) == text


async def test_path_toml_of_the_policys_answer(tmp_path: Path) -> None:
    _, policy = await _policy(
        tmp_path,
        """
kumo.on('make.toml', function()
  return kumo.format_egress_path_config_toml(
    kumo.invoke_get_egress_path_config('gmail.com', 'ip-1', 'site'))
end)
""",
    )
    text = await policy.call_custom_event("make.toml")
    lines = text.splitlines()
    assert 'idle_timeout = "1s 500ms"' in lines and 'max_connection_rate = "10/s"' in lines
    assert 'prohibited_hosts = ["10.0.0.0/24", "192.0.2.1"]' in lines
    assert 'ehlo_domain = "site.ip-1.gmail.com"' in lines
    # Values first, then the tables; the map holding only tables has no header of its own.
    assert text.endswith(
        "\nuse_lmtp = false\n\n[additional_connection_limits.shared]\nforce_local = false\n"
        "limit = 4\n\n[connection_limit]\nforce_local = true\nlimit = 8\n"
    )
    parsed = tomllib.loads(text)
    assert parsed["additional_connection_limits"] == {"shared": {"limit": 4, "force_local": False}}


async def test_queue_toml_from_a_table_or_from_make_queue_config(tmp_path: Path) -> None:
    _, policy = await _policy(
        tmp_path,
        """
kumo.on('make.queue_toml', function()
  return { kumo.format_queue_config_toml(kumo.invoke_get_queue_config('t1@example.com')),
    kumo.format_queue_config_toml(kumo.make_queue_config { max_age = '400 days' }) }
end)
""",
    )
    text, made = await policy.call_custom_event("make.queue_toml")
    assert text == (
        'egress_pool = "nil|t1|example.com|nil"\nmax_age = "2days"\n'
        'max_message_rate = "50/s"\nreap_interval = "10m"\nrefresh_interval = "1m"\n'
        'refresh_strategy = "Ttl"\nretry_interval = "1m 30s"\nshrink_policy = []\n'
        'strategy = "SingletonTimerWheel"\n\n[protocol.smtp]\nmx_list = []\n'
        "treat_mx_list_as_secure = false\n"
    )
    assert tomllib.loads(text)["protocol"] == {
        "smtp": {"mx_list": [], "treat_mx_list_as_secure": False}
    }
    # 400 days in humantime's units: a year of 365.25 days and a month of 30.44.
    assert 'max_age = "1year 1month 4days 7h 26m 24s"\n' in made


async def test_a_bad_table_is_refused_as_the_make_function_refuses_it(tmp_path: Path) -> None:
    _, policy = await _policy(tmp_path)
    unknown = re.escape("unknown key 'max_rate' for kumo.format_egress_path_config_toml")
    with pytest.raises(PolicyError, match=unknown):
        await _call(policy, "format_egress_path_config_toml", {"max_rate": "1/s"})
    bad_limit = re.escape("'connection_limit.limit' in kumo.compute_egress_path_config_constraints")
    with pytest.raises(PolicyError, match=bad_limit):
        await _call(policy, "compute_egress_path_config_constraints",
                    {"connection_limit": {"limit": "many"}})  # fmt: skip


# ------------------------------------------------------------------ constraints
async def test_docs_example_constraints_and_their_text(tmp_path: Path) -> None:
    _, policy = await _policy(
        tmp_path,
        f"""
kumo.on('make.docs', function()
  local constraints = kumo.compute_egress_path_config_constraints(kumo.make_egress_path
    {DOCS_PATH})
  return {{ constraints, kumo.format_egress_path_config_constraints(constraints) }}
end)
""",
    )
    constraints, text = await policy.call_custom_event("make.docs")
    assert constraints == DOCS_CONSTRAINTS
    assert text == DOCS_CEILINGS


async def test_queue_constraints_fold_into_the_path_as_additional(tmp_path: Path) -> None:
    _, policy = await _policy(
        tmp_path,
        f"""
kumo.on('make.merged', function()
  local queue = kumo.compute_queue_config_constraints(
    kumo.invoke_get_queue_config('example.com'))
  local path = kumo.make_egress_path {DOCS_PATH}
  local merged = kumo.compute_egress_path_config_constraints(path, queue)
  return {{ queue, merged, kumo.format_egress_path_config_constraints(merged),
    kumo.format_egress_path_config_constraints(queue) }}
end)
""",
    )
    queue, merged, text, queue_text = await policy.call_custom_event("make.merged")
    assert queue == {
        "max_concurrent_dispatchers": {"value": float("inf"),
                                       "source": {"kind": "other", "name": "queue config"},
                                       "display": "\u221e"},
        "max_message_rate": {"value": 50, "source": QUEUE_RATE, "display": "50/s"},
    }  # fmt: skip
    # The queue's 50/s is below the 100/s cycling ceiling; the declared 1000/s stays
    # unreachable; the open dispatcher ceiling loses to the path's 32.
    assert merged == {**DOCS_CONSTRAINTS,
                      "max_message_rate": {"value": 50, "source": QUEUE_RATE,
                                           "display": "50/s"}}  # fmt: skip
    assert text == DOCS_CEILINGS.replace(
        "10 \u00d7 10/s = 100/s\n    source: max_deliveries_per_connection \u00d7 "
        "max_connection_rate",
        "50/s\n    source: scheduled queue max_message_rate",
    )
    assert queue_text == ("ceilings:\n  concurrent dispatchers: \u221e\n    source: queue config\n"
                          "  message rate:           50/s\n"
                          "    source: scheduled queue max_message_rate\n")  # fmt: skip


async def test_a_primary_rate_beaten_by_additional_constraints_is_declared(
    tmp_path: Path,
) -> None:
    _, policy = await _policy(tmp_path)
    other = {"max_concurrent_dispatchers": {"value": 4, "source": {"kind": "other",
             "name": "cluster"}, "display": "4"},
             "max_message_rate": {"value": 2, "source": {"kind": "other", "name": "cluster"},
                                  "display": "120/m"}}  # fmt: skip
    merged = await _call(policy, "compute_egress_path_config_constraints",
                         {"max_message_rate": "5/s"}, other)  # fmt: skip
    assert merged == {
        "max_concurrent_dispatchers": other["max_concurrent_dispatchers"],
        "max_message_rate": other["max_message_rate"],
        "max_message_rate_declared": "5/s",
    }
    # A tie keeps the path's own term.
    tie = {**other, "max_message_rate": {**other["max_message_rate"], "value": 5}}
    kept = await _call(policy, "compute_egress_path_config_constraints",
                       {"max_message_rate": "5/s"}, tie)  # fmt: skip
    assert kept["max_message_rate"]["source"] == {"kind": "primary"}
    assert "max_message_rate_declared" not in kept


async def test_a_malformed_constraints_table_is_refused_naming_the_field(
    tmp_path: Path,
) -> None:
    _, policy = await _policy(tmp_path)
    with pytest.raises(PolicyError, match="missing field `max_concurrent_dispatchers`"):
        await _call(policy, "format_egress_path_config_constraints", {})
    bad = {"max_concurrent_dispatchers": {"value": 1, "source": {"kind": "elsewhere"},
                                          "display": "1"}}  # fmt: skip
    with pytest.raises(PolicyError, match=r"max_concurrent_dispatchers\.source: expected"):
        await _call(policy, "compute_egress_path_config_constraints", {}, bad)
    nameless = {"max_concurrent_dispatchers": {"value": 1, "source": {"kind": "additional"},
                                               "display": "1"}}  # fmt: skip
    with pytest.raises(PolicyError, match="kind 'additional' needs a name"):
        await _call(policy, "format_egress_path_config_constraints", nameless)


# ------------------------------------------------------------------ Python policies
async def test_python_policies_get_the_same_plain_data(tmp_path: Path) -> None:
    runtime, _ = await _policy(tmp_path)
    kumo = runtime.kumo
    assert await kumo.invoke_get_egress_path_config("gmail.com", "ip-1", "site") == {
        **PATH_TABLE, "skip_hosts": [], "tls_certificate": None, "tls_private_key": None,
        "openssl_cipher_list": None, "openssl_cipher_suites": None,
        "system_shutdown_timeout": None, "smtp_auth_plain_username": None,
        "smtp_auth_plain_password": None, "source_selection_rate": None,
        "provider_name": None, "remember_broken_tls": None, "readyq_pool_name": None,
        "dispatcher_progress_watchdog_timeout": None}  # fmt: skip
    queue = await kumo.invoke_get_queue_config("t1@example.com")
    assert kumo.compute_queue_config_constraints(queue)["max_message_rate"]["value"] == 50
    assert kumo.format_egress_path_config_constraints(
        kumo.compute_egress_path_config_constraints(
            {"max_deliveries_per_connection": 10, "max_connection_rate": "10/s",
             "max_message_rate": "1000/s"})) == DOCS_CEILINGS  # fmt: skip
