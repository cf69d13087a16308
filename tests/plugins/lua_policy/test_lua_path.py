"""package.path (KUMOCORE_LUA_PATH, KumoMTA's install locations) and the clear error for
KumoMTA functions kumocore lacks."""

from __future__ import annotations

from pathlib import Path

import pytest
from kumocore_lua_policy.package_path import lua_package_path

from kumocore import PolicyError

from .support import Recorder, load, write


async def test_kumocore_lua_path_directories_come_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    share = tmp_path / "share"
    write(share, "policy-extras/helper.lua", "return { origin = 'share' }\n")
    policy_dir = tmp_path / "policy"
    write(policy_dir, "policy-extras/helper.lua", "return { origin = 'policy dir' }\n")
    write(policy_dir, "local_only.lua", "return { origin = 'policy dir' }\n")
    monkeypatch.setenv("KUMOCORE_LUA_PATH", str(share))
    recorder = Recorder()
    await load(policy_dir, """\
        local kumo = require 'kumo'
        kumo.test.mark(require('policy-extras.helper').origin)
        kumo.test.mark(require('local_only').origin)
        kumo.test.mark(package.path)
    """, recorder=recorder)
    origin, local, path = recorder.marks
    assert (origin, local) == ("share", "policy dir")
    entries = path.split(";")
    assert entries[:2] == [f"{share}/?.lua", f"{share}/?/init.lua"]
    assert entries.index(f"{policy_dir}/?.lua") < entries.index("/opt/kumomta/share/?.lua")
    assert "/opt/kumomta/share/policy-extras/?.lua" in entries
    assert "/opt/kumomta/etc/policy/?.lua" in entries


def test_package_path_order_and_templates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUMOCORE_LUA_PATH", "/a:/b/?.luac")
    path = lua_package_path("/policy", "./?.lua;/usr/share/lua/5.4/?.lua").split(";")
    assert path[:5] == ["/a/?.lua", "/a/?/init.lua", "/b/?.luac", "/policy/?.lua",
                        "/policy/?/init.lua"]
    assert path[-2:] == ["./?.lua", "/usr/share/lua/5.4/?.lua"]
    assert path.index("/opt/kumomta/share/?.lua") < path.index("./?.lua")


@pytest.mark.parametrize(("expression", "name"), [
    ("kumo.file_type.from_bytes(msg)", "kumo.file_type"),
    ("kumo.dns.configure_unbound_resolver({})", "kumo.dns.configure_unbound_resolver"),
    ("kumo.dkim.set_signing_threads(4)", "kumo.dkim.set_signing_threads"),
    ("kumo.enable_memory_callstack_tracking(true)", "kumo.enable_memory_callstack_tracking"),
])
async def test_kumomta_function_kumocore_lacks_fails_with_one_clear_line(
    tmp_path: Path, expression: str, name: str
) -> None:
    with pytest.raises(PolicyError) as info:
        await load(tmp_path, f"""\
            local kumo = require 'kumo'
            local x = {expression}
        """)
    assert str(info.value) == (
        f"{tmp_path / 'policy.lua'}:2: KumoMTA's '{name}' is not supported by kumocore yet")


async def test_unknown_non_kumomta_names_still_read_as_nil(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.test.mark(tostring(kumo.no_such_thing))
        kumo.my_extension = function() return 'mine' end
        kumo.test.mark(kumo.my_extension())
        kumo.test.mark(require('kumo.string') == kumo.string)
    """, recorder=recorder)
    assert recorder.marks == ["nil", "mine", True]
