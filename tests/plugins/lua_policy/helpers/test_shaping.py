"""policy-extras.shaping over kumo.shaping.load: merge order, MX rollup to site names,
providers, per-source blocks, replace_base, caching, and bad shaping files refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kumocore_lua_policy import LuaPolicyError

from kumocore.node.runtime import Runtime
from tests.plugins.lua_policy.helpers.conftest import Load

POLICY = """
local kumo = require 'kumo'
local shaping = require 'policy-extras.shaping'
local shaper = shaping:setup_with_automation {
  no_default_files = NO_DEFAULTS,
  extra_files = { 'DIR/a.toml', 'DIR/b.json' },
  load_validation_options = OPTIONS,
}
kumo.on('get_egress_path_config', shaper.get_egress_path_config)
"""

A_TOML = """
["default"]
connection_limit = 10
max_message_rate = "100/s"
idle_timeout = "7s"
["default".sources."ip-1"]
idle_timeout = "8s"

[provider."google"]
match = [{ MXSuffix = ".google.com" }]
connection_limit = 20
max_deliveries_per_connection = 50
provider_connection_limit = 5
[provider."google".sources."ip-1"]
max_deliveries_per_connection = 40

["gmail.test"]
connection_limit = 30
["gmail.test".sources."ip-1"]
connection_limit = 3

["plain.test"]
mx_rollup = false
max_deliveries_per_connection = 7
"""

B_JSON = """
{
  "gmail.test": {"max_message_rate": "50/s"},
  "plain.test": {"replace_base": true, "mx_rollup": false, "connection_limit": 2}
}
"""


async def path_config(runtime: Runtime, policy: Any, domain: str, source: str) -> Any:
    site = (await runtime.resolver.lookup_mx(domain)).site_name
    return await policy.call_event("get_egress_path_config", domain, source, site)


async def load(
    load_policy: Load,
    files: Callable[..., Path],
    a: str = A_TOML,
    b: str = B_JSON,
    no_defaults: bool = True,
    options: str = "nil",
) -> tuple[Runtime, Any]:
    files(a__toml=a, b__json=b)
    source = POLICY.replace("NO_DEFAULTS", "true" if no_defaults else "false")
    return await load_policy(source.replace("OPTIONS", options))


async def test_options_merge_default_provider_site_domain_then_sources(
    load_policy: Load, files: Callable[..., Path]
) -> None:
    runtime, policy = await load(load_policy, files)
    gmail = await path_config(runtime, policy, "gmail.test", "ip-2")
    assert str(gmail.connection_limit) == "30"  # site block over provider over default
    assert gmail.max_deliveries_per_connection == 50  # provider
    assert str(gmail.max_message_rate) == "50/s"  # later file merged over the site block
    assert gmail.idle_timeout == 7  # default
    assert gmail.provider_name == "google"
    assert {k: str(v) for k, v in gmail.additional_connection_limits.items()} == {
        "shaping-provider-google-ip-2-limit": "5"
    }
    via_ip1 = await path_config(runtime, policy, "gmail.test", "ip-1")
    assert str(via_ip1.connection_limit) == "3"  # the site's per-source block
    assert via_ip1.max_deliveries_per_connection == 40  # the provider's per-source block
    assert via_ip1.idle_timeout == 8  # default's per-source block


async def test_a_provider_block_without_match_adds_to_the_provider_another_file_matched(
    load_policy: Load, files: Callable[..., Path]
) -> None:
    # KumoMTA's automation guide layers its community shaping.toml, whose blocks add
    # options and rules to providers without repeating their match, over the default.
    extra = '{"provider": {"google": {"max_deliveries_per_connection": 60}}}'
    runtime, policy = await load(load_policy, files, b=extra)
    gmail = await path_config(runtime, policy, "gmail.test", "ip-2")
    assert gmail.provider_name == "google"
    assert gmail.max_deliveries_per_connection == 60  # the later, match-less block


async def test_a_domain_rolls_up_to_the_site_of_a_listed_domain_with_the_same_mx(
    load_policy: Load, files: Callable[..., Path]
) -> None:
    runtime, policy = await load(load_policy, files)
    workspace = await path_config(runtime, policy, "workspace.test", "ip-2")
    assert str(workspace.connection_limit) == "30"  # gmail.test's block, by site name


async def test_replace_base_discards_what_was_merged_before(
    load_policy: Load, files: Callable[..., Path]
) -> None:
    runtime, policy = await load(load_policy, files)
    plain = await path_config(runtime, policy, "plain.test", "ip-2")
    assert str(plain.connection_limit) == "2"
    assert plain.max_deliveries_per_connection == 1024  # kumocore's default, not 7
    assert plain.max_message_rate is None  # default's rate was discarded too
    # mx_rollup = false: alias.test shares plain.test's MX but not its block
    alias = await path_config(runtime, policy, "alias.test", "ip-2")
    assert str(alias.connection_limit) == "10"


async def test_the_merged_config_is_cached_per_site_and_source(
    load_policy: Load, files: Callable[..., Path]
) -> None:
    runtime, policy = await load(load_policy, files)
    first = await path_config(runtime, policy, "gmail.test", "ip-2")
    assert await path_config(runtime, policy, "workspace.test", "ip-2") is first
    assert await path_config(runtime, policy, "gmail.test", "ip-1") is not first


async def test_kumocores_default_file_is_loaded_first_unless_no_default_files(
    load_policy: Load, files: Callable[..., Path]
) -> None:
    runtime, policy = await load(
        load_policy, files, a='["other.test"]\nmx_rollup = false\n', b="{}", no_defaults=False
    )
    config = await path_config(runtime, policy, "plain.test", "ip-2")
    assert str(config.max_connection_rate) == "100/m"  # from kumocore's default file
    gmail = await path_config(runtime, policy, "gmail.test", "ip-2")
    assert gmail.provider_name == "google" and gmail.enable_tls == "Required"


@pytest.mark.parametrize(
    ("a", "expected"),
    [
        ('["x.test"]\nconection_limit = 5\n', r'a.toml: "x.test".conection_limit: unknown key'),
        ('["x.test"]\nidle_timeout = "soon"\n', r"invalid value for 'idle_timeout'"),
        ('["x.test"]\nmx_rollup = "no"\n', r'"x.test".mx_rollup: expected true or false'),
        (
            '["x.test".sources."s"]\nmax_message_rate = "fast"\n',
            r'"x.test".sources.s: invalid value for .max_message_rate.',
        ),
        ('[provider."p"]\nmatch = [{ MxSuffix = ".x" }]\n', r"provider.p.match\[1\]: expected"),
        (
            '[["x.test".automation]]\nregex = "(oops"\naction = "Suspend"\nduration = "1h"\n',
            r'"x.test".automation\[1\].regex: invalid regex',
        ),
        (
            '[["x.test".automation]]\nregex = "a"\naction = "Explode"\nduration = "1h"\n',
            r"automation\[1\].action: expected \'Suspend\'",
        ),
        (
            '[["x.test".automation]]\nregex = "a"\naction = "Suspend"\n',
            r"automation\[1\].duration: missing",
        ),
        (
            '[["x.test".automation]]\nregex = "a"\nduration = "1h"\n'
            'action = { SetConfig = { name = "conection_limit", value = 1 } }\n',
            r"'conection_limit' is not a kumo.make_egress_path option",
        ),
        (
            '[["x.test".automation]]\nregex = "a"\naction = "Suspend"\nduration = "1h"\n'
            'trigger = { Threshold = "often" }\n',
            r"automation\[1\].trigger.Threshold: expected",
        ),
    ],
)
async def test_a_bad_shaping_file_is_refused_with_file_and_key(
    load_policy: Load, files: Callable[..., Path], a: str, expected: str
) -> None:
    with pytest.raises(LuaPolicyError, match=expected) as info:
        await load(load_policy, files, a=a, b="{}")
    assert "policy.lua:4:" in str(info.value)


async def test_valid_automation_rules_are_accepted(
    load_policy: Load, files: Callable[..., Path]
) -> None:
    rules = (
        '["x.test"]\nmx_rollup = false\n'
        '[["x.test".automation]]\nregex = ["4\\\\.7\\\\.1", "^(?!.*internal).*RL0"]\n'
        'action = [{ SetConfig = { name = "max_message_rate", value = "1/min" } }, "Suspend"]\n'
        'trigger = { Threshold = "2/hr" }\nduration = "90m"\nmatch_internal = false\n'
    )
    await load(load_policy, files, a=rules, b="{}")


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("publish = { 'amqp://127.0.0.1:8008' }", "'amqp://127.0.0.1:8008' is not a TSA URL"),
        (
            "subscribe = { 'redis-throttles', 'http://127.0.0.1:8008' }",
            "subscribe to one automation service",
        ),
        ("back_pressure = 1000", "option 'back_pressure' of setup_with_automation .* is not "
                                 "supported by kumocore yet"),
    ],
)
async def test_unsupported_automation_settings_are_refused_not_ignored(
    load_policy: Load, setup: str, expected: str
) -> None:
    with pytest.raises(LuaPolicyError, match=expected):
        await load_policy(
            f"""
            local shaping = require 'policy-extras.shaping'
            local shaper = shaping:setup_with_automation {{ {setup} }}
            shaper.setup_publish()
            """
        )


async def test_setup_publish_without_publish_targets_is_allowed(load_policy: Load) -> None:
    await load_policy(
        """
        local shaping = require 'policy-extras.shaping'
        local shaper = shaping:setup_with_automation { publish = {}, subscribe = {} }
        shaper.setup_publish()
        """
    )


async def test_aliased_sites_and_null_mx_are_reported_at_the_chosen_severity(
    load_policy: Load, files: Callable[..., Path]
) -> None:
    aliased = '["plain.test"]\nconnection_limit = 1\n["alias.test"]\nconnection_limit = 2\n'
    await load(load_policy, files, a=aliased, b="{}")  # Ignore by default
    with pytest.raises(LuaPolicyError, match=r"roll up to site 'mx.plain.test'"):
        await load(load_policy, files, a=aliased, b="{}", options="{ aliased_site = 'Error' }")
    null = '["nullmx.test"]\nconnection_limit = 1\n'
    with pytest.raises(LuaPolicyError, match=r"nullmx.test.*null MX"):
        await load(load_policy, files, a=null, b="{}", options="{ null_mx = 'Error' }")
    with pytest.raises(LuaPolicyError, match=r"load_validation_options|unknown option"):
        await load(load_policy, files, a=null, b="{}", options="{ nul_mx = 'Error' }")


async def test_a_shaping_block_naming_an_unknown_source_is_refused(
    load_policy: Load, files: Callable[..., Path]
) -> None:
    files(
        sources__toml='[source."ip-1"]\nsource_address = "127.0.10.1"\n',
        a__toml='["x.test".sources."ip-7"]\nconnection_limit = 1\n',
    )
    with pytest.raises(LuaPolicyError, match=r"source 'ip-7' is not defined by the sources"):
        await load_policy(
            """
            local sources = require 'policy-extras.sources'
            local shaping = require 'policy-extras.shaping'
            sources:setup { 'DIR/sources.toml' }
            shaping:setup { 'DIR/a.toml' }
            """
        )


COLON_POLICY = """
local kumo = require 'kumo'
local result = kumo.shaping.load({ 'DIR/a.toml' })
-- KumoMTA's own shaping helper calls these with ':'.
assert(#result:get_errors() == 0, 'errors')
assert(#result:get_warnings() == 0, 'warnings')
kumo.on('get_egress_path_config', function(domain, source, site)
  return result:get_egress_path_config(domain, source, site)
end)
"""


async def test_the_loaded_shaping_data_can_be_called_with_a_colon(
    load_policy: Load, files: Callable[..., Path]
) -> None:
    files(a__toml=A_TOML)
    runtime, policy = await load_policy(COLON_POLICY)
    gmail = await path_config(runtime, policy, "gmail.test", "ip-2")
    assert str(gmail.connection_limit) == "30"


async def test_shaping_data_loaded_again_and_again_is_freed_once_the_policy_drops_it(
    files: Callable[..., Path],
) -> None:
    # The tsa-daemon asks for its shaping data every 30 s and nodes reload it every memoize
    # ttl: each load used to stay in the runtime for good (about 1 MiB per 100 loads).
    import gc

    from kumocore_lua_policy.extras import PolicyExtras

    directory = files(a__toml=A_TOML)
    extras = PolicyExtras()
    tables = [await extras.load_shaping([str(directory / "a.toml")]) for _ in range(20)]
    kept = tables[-1]
    del tables
    gc.collect()
    assert list(extras._loaded) == [kept["automation_handle"]]  # what a table still holds
