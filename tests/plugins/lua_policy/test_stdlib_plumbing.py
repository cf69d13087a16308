"""kumo.glob, kumo.traceback, configure_accounting_db_path, invoke_get_egress_path_config
and the epoch functions, from Lua and from Python."""

from __future__ import annotations

from pathlib import Path

import pytest

from kumocore import ConfigError, PolicyError

from .support import Recorder, load, make_runtime, write


def _tree(tmp_path: Path) -> Path:
    for name in ("a.toml", "b.json", "sub/c.toml", "sub/d.txt"):
        write(tmp_path / "data", name, "x = 1\n")
    return tmp_path / "data"


async def test_lua_glob_with_braces_recursion_and_relative_to(tmp_path: Path) -> None:
    data = _tree(tmp_path)
    recorder = Recorder()
    await load(tmp_path, f"""\
        local kumo = require 'kumo'
        kumo.test.mark(kumo.glob('{data}/**/*.{{toml,json}}'))
        kumo.test.mark(kumo.glob('*.toml', '{data}'))
        kumo.test.mark(kumo.uncached_glob('{data}/nothing/*'))
        kumo.test.mark(kumo.fs.glob('{data}/sub/*.txt'))
    """, recorder=recorder)
    assert recorder.marks == [
        [f"{data}/a.toml", f"{data}/b.json", f"{data}/sub/c.toml"], ["a.toml"], {},
        [f"{data}/sub/d.txt"]]


def test_python_glob_caches_for_its_ttl(tmp_path: Path) -> None:
    data = _tree(tmp_path)
    kumo = make_runtime().kumo
    assert kumo.glob(f"{data}/*.toml") == [f"{data}/a.toml"]
    write(data, "new.toml", "")
    assert kumo.glob(f"{data}/*.toml") == [f"{data}/a.toml"]  # cached (ttl 60 s)
    assert kumo.uncached_glob(f"{data}/*.toml") == [f"{data}/a.toml", f"{data}/new.toml"]


async def test_lua_traceback_frames(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local function inner()
          local trace = kumo.traceback(1)
          kumo.test.mark({ trace[1].curr_line, trace[1].name, trace[1].what,
                           trace[2].curr_line, trace[1].line_defined })
        end
        inner()
    """, recorder=recorder)
    assert recorder.marks == [[3, "inner", "Lua", 7, 2]]


def test_python_traceback_frames() -> None:
    kumo = make_runtime().kumo
    frames = kumo.traceback(1)
    assert frames[0]["name"] == "test_python_traceback_frames"
    assert frames[0]["short_src"] == __file__ and frames[0]["what"] == "Python"


async def test_configure_accounting_db_path_is_accepted_and_checked(tmp_path: Path) -> None:
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.configure_accounting_db_path '/tmp/accounting.db'
    """)
    assert runtime.pm.get_plugin("lua_policy").stdlib.accounting.db_path == "/tmp/accounting.db"
    with pytest.raises(ConfigError, match="takes a file name"):
        runtime.kumo.configure_accounting_db_path("")
    with pytest.raises(PolicyError, match="configure_accounting_db_path takes a file name"):
        await load(tmp_path, "require('kumo').configure_accounting_db_path(42)\n")


async def test_invoke_get_egress_path_config_runs_the_lookup(tmp_path: Path) -> None:
    runtime, policy = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('get_egress_path_config', function(domain, source, site)
          return kumo.make_egress_path { max_deliveries_per_connection = #domain }
        end)
        kumo.on('make.probe', function()
          return kumo.invoke_get_egress_path_config('gmail.com', 'ip-1', 'site')
            .max_deliveries_per_connection
        end)
    """)
    assert await policy.call_custom_event("make.probe") == 9
    config = await runtime.kumo.invoke_get_egress_path_config("yahoo.com", "ip-1", "site")
    assert config["max_deliveries_per_connection"] == 9  # a plain table, as in KumoMTA


async def test_python_epoch_functions(tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text("")
    kumo = make_runtime().kumo
    kumo.set_config_monitor_globs([f"{tmp_path}/*.{{toml,yaml}}"])
    assert kumo.eval_config_monitor_globs() == [str(tmp_path / "x.toml")]
    assert kumo.bump_config_epoch() == 1
    with pytest.raises(ConfigError, match="takes an array of glob strings"):
        kumo.set_config_monitor_globs("/etc/*.toml")
