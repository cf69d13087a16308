"""The plugin through pluggy: discovery, kumo.configure_redis_throttles, options, shutdown."""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from typing import Any

import pluggy
import pytest
from kumocore_redis_throttles import RedisOptions, RedisThrottlesPlugin, RedisThrottleStore
from kumocore_redis_throttles.options import parse_duration, redact

import kumocore.hookspecs
from bench.common.redis_server import RedisServer, free_port
from kumocore import ConfigError, takes_table
from kumocore.policy.hooks import Hooks
from kumocore.policy.plugins import make_plugin_manager
from kumocore.throttle import ThrottleSpec


def fresh_manager() -> tuple[Hooks, RedisThrottlesPlugin]:
    """Hooks over a plugin manager holding only this plugin (kumocore's typed facade)."""
    pm = pluggy.PluginManager("kumocore")
    pm.add_hookspecs(kumocore.hookspecs)
    plugin = RedisThrottlesPlugin()
    pm.register(plugin)
    return Hooks(pm), plugin


def configure_fn(hooks: Hooks) -> Any:
    return hooks.policy_functions()["configure_redis_throttles"][1]


async def shutdown(hooks: Hooks) -> None:
    await hooks.shutdown()


def test_plugin_is_discovered_through_its_kumocore_entry_point() -> None:
    found = {ep.name: ep for ep in entry_points(group="kumocore")}
    assert found["redis_throttles"].load() is RedisThrottlesPlugin
    assert isinstance(make_plugin_manager().get_plugin("redis_throttles"), RedisThrottlesPlugin)


async def test_configure_through_pluggy_provides_a_working_shared_store(
    redis_server: RedisServer,
) -> None:
    hooks, plugin = fresh_manager()
    assert hooks.throttle_stores() == []  # nothing until configured
    configure = configure_fn(hooks)
    assert takes_table(configure)
    await configure(node=redis_server.url, pool_size=4, connect_timeout="2s")
    [store] = hooks.throttle_stores()
    assert isinstance(store, RedisThrottleStore) and store is plugin.store
    assert not (await store.throttle("k", ThrottleSpec.parse("1/h"))).throttled
    assert (await store.throttle("k", ThrottleSpec.parse("1/h"))).throttled
    await shutdown(hooks)
    assert hooks.throttle_stores() == []
    await store.close()  # the server closes its store again after shutdown: harmless


async def test_each_plugin_manager_configures_its_own_store(redis_server: RedisServer) -> None:
    (first, _), (second, _) = fresh_manager(), fresh_manager()
    await configure_fn(first)(node=redis_server.url)
    assert second.throttle_stores() == []
    await shutdown(first)


async def test_configuring_twice_is_refused(redis_server: RedisServer) -> None:
    hooks, _ = fresh_manager()
    await configure_fn(hooks)(node=redis_server.url)
    with pytest.raises(ConfigError, match="already configured"):
        await configure_fn(hooks)(node=redis_server.url)
    await shutdown(hooks)


async def test_unreachable_redis_at_configure_names_the_node_without_its_password() -> None:
    hooks, plugin = fresh_manager()
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    with pytest.raises(ConfigError) as caught:
        await configure_fn(hooks)(node=url, connect_timeout=2)
    message = str(caught.value)
    assert redact(url) in message and "hunter2" not in message
    assert plugin.store is None


async def test_wrong_password_at_configure_is_a_config_error(redis_server: RedisServer) -> None:
    hooks, _ = fresh_manager()
    with pytest.raises(ConfigError, match=re.escape(redis_server.url)):
        await configure_fn(hooks)(node=redis_server.url, username="nobody", password="wrong")


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"node": "redis://127.0.0.1/", "nodes": "x"}, "nodes"),
        ({"node": "redis://127.0.0.1/", "recycle_timeout": "1s"}, "recycle_timeout"),
        ({}, "node"),
        ({"node": "127.0.0.1:6379"}, "node"),
        ({"node": 6379}, "node"),
        ({"node": "redis://127.0.0.1:port/"}, "node"),
        ({"node": "redis://127.0.0.1/notadb"}, "node"),
        ({"node": ["redis://a/", "redis://b/"], "cluster": False}, "node"),
        ({"node": "redis://127.0.0.1/", "pool_size": 0}, "pool_size"),
        ({"node": "redis://127.0.0.1/", "pool_size": "10"}, "pool_size"),
        ({"node": "redis://127.0.0.1/", "connect_timeout": "30 hrs ago"}, "connect_timeout"),
        ({"node": "redis://127.0.0.1/", "connect_timeout": 0}, "connect_timeout"),
        ({"node": "redis://127.0.0.1/", "cluster": "yes"}, "cluster"),
        ({"node": "redis://127.0.0.1/", "read_from_replicas": 1}, "read_from_replicas"),
        ({"node": "redis://127.0.0.1/", "password": 1234}, "password"),
    ],
)
async def test_bad_options_are_config_errors_naming_the_key(
    options: dict[str, Any], named: str
) -> None:
    hooks, _ = fresh_manager()
    with pytest.raises(ConfigError, match=rf"configure_redis_throttles: {named}:"):
        await configure_fn(hooks)(**options)


def test_options_follow_kumomtas_defaults_and_durations() -> None:
    single = RedisOptions.from_table({"node": "redis://h:1/", "connect_timeout": "1m 30s"})
    assert (single.cluster, single.pool_size, single.connect_timeout) == (False, 10, 90.0)
    listed = RedisOptions.from_table({"node": ["redis://a:1/", "redis://b:2/"],
                                      "read_from_replicas": True})  # fmt: skip
    assert listed.cluster and listed.nodes == ("redis://a:1/", "redis://b:2/")
    lua_array = RedisOptions.from_table({"node": {1: "redis://a:1/", 2: "redis://b:2/"}})
    assert lua_array.nodes == listed.nodes
    assert "secret" not in repr(RedisOptions.from_table({"node": "redis://h/",
                                                         "password": "secret"}))  # fmt: skip
    assert [parse_duration("t", v) for v in ("30s", "500ms", 2, "1h", "1.5s")] == [
        30.0, 0.5, 2.0, 3600.0, 1.5]  # fmt: skip
    assert redact("redis://user:pw@host:1/0") == "redis://user:***@host:1/0"
    assert redact("redis://host:1/0") == "redis://host:1/0"
