"""Plugin discovery through entry points, blocking, and what `kumocore plugins` reports."""

from __future__ import annotations

import pytest

from kumocore import Rejection
from kumocore.policy.hookcall import HookCaller
from kumocore.policy.plugins import BLOCK_ENV, describe_plugins, make_plugin_manager


def test_pip_installed_third_party_plugin_is_discovered_through_its_entry_point() -> None:
    pm = make_plugin_manager()
    assert pm.has_plugin("hello")
    info = {i.name: i for i in describe_plugins(pm)}["hello"]
    assert info.distribution == "kumocore-hello"
    assert "kumo_smtp_server_mail_from" in info.hooks


async def test_third_party_plugin_hook_runs_and_its_policy_function_configures_it() -> None:
    pm = make_plugin_manager()
    caller = HookCaller(pm)
    functions = dict(
        p for _, fns in caller.call_all_sync("kumo_register_policy_functions") for p in fns.items()
    )
    functions["hello.block_sender"](address="spam@hello.example")
    assert functions["hello.greet"]("operator") == "hello, operator"
    with pytest.raises(Rejection) as info:
        await caller.call_all(
            "kumo_smtp_server_mail_from", sender="spam@hello.example", conn_meta={}
        )
    assert info.value.code == 550


def test_each_plugin_manager_gets_its_own_plugin_instance() -> None:
    first, second = make_plugin_manager(), make_plugin_manager()
    assert first.get_plugin("hello") is not second.get_plugin("hello")


def test_blocked_plugins_are_not_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BLOCK_ENV, "hello")
    assert not make_plugin_manager().has_plugin("hello")


def test_entry_point_autoload_can_be_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUMOCORE_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert not make_plugin_manager().has_plugin("hello")
