"""kumo.serde.* / kumo.toml_* / kumo.json_load: data files from Lua and from Python."""

from __future__ import annotations

from pathlib import Path

import pytest

from kumocore import ConfigError, PolicyError

from .support import Recorder, load, make_runtime


async def test_lua_loads_toml_json_and_yaml_files(tmp_path: Path) -> None:
    (tmp_path / "d.toml").write_text('name = "x"\n[pool.a]\nweight = 2\n')
    (tmp_path / "d.json").write_text(
        '{\n  // a comment\n  "list": [1, 2], /* more */ "u": "#x"\n}\n')
    (tmp_path / "d.yaml").write_text("a:\n  - 1\n  - two\n")
    recorder = Recorder()
    await load(tmp_path, f"""\
        local kumo = require 'kumo'
        local t = kumo.toml_load '{tmp_path}/d.toml'
        kumo.test.mark(t.name .. ' ' .. t.pool.a.weight)
        local same = kumo.serde.toml_load '{tmp_path}/d.toml'
        kumo.test.mark(same.pool.a.weight)
        local j = kumo.json_load '{tmp_path}/d.json'
        kumo.test.mark(#j.list .. ' ' .. j.u)
        local y = kumo.serde.yaml_load '{tmp_path}/d.yaml'
        kumo.test.mark(y.a[2])
        kumo.test.mark(kumo.serde.json_parse('[1,2,3]')[3])
        kumo.test.mark(kumo.toml_parse('x = 1').x)
        kumo.test.mark(kumo.serde.yaml_parse('k: v').k)
    """, recorder=recorder)
    assert recorder.marks == ["x 2", 2, "2 #x", "two", 3, 1, "v"]


async def test_lua_encoders_round_trip(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local value = { name = 'n', list = { 1, 2 }, sub = { k = true } }
        kumo.test.mark(kumo.serde.toml_parse(kumo.toml_encode(value)).sub.k)
        kumo.test.mark(kumo.serde.toml_parse(kumo.serde.toml_encode_pretty(value)).list[2])
        kumo.test.mark(kumo.serde.toml_encode_pretty_compact { b = 1, a = {}, c = { z = 1 } })
        kumo.test.mark(kumo.serde.json_parse(kumo.serde.json_encode_pretty(value)).name)
        kumo.test.mark(kumo.serde.yaml_parse(kumo.serde.yaml_encode(value)).list[1])
    """, recorder=recorder)
    assert recorder.marks == [True, 2, 'a = {}\nb = 1\n\n[c]\nz = 1\n', "n", 1]


async def test_bad_toml_file_error_names_file_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('ok = 1\nbroken = = 2\n')
    with pytest.raises(PolicyError) as info:
        await load(tmp_path, f"""\
            local kumo = require 'kumo'
            local t = kumo.toml_load '{bad}'
        """)
    text = str(info.value)
    assert info.value.where == f"{tmp_path / 'policy.lua'}:2"
    assert str(bad) in text and "line 2" in text and "column" in text


async def test_bad_json_and_yaml_errors_name_the_position(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{\n  "a": 1,\n  "b": ]\n}')
    (tmp_path / "bad.yaml").write_text("a: [1, 2\nb: 3\n")
    runtime = make_runtime()
    with pytest.raises(ConfigError, match=r"bad.json: invalid JSON at line 3 column"):
        runtime.kumo.serde.json_load(str(tmp_path / "bad.json"))
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML at line \d+ column \d+"):
        runtime.kumo.serde.yaml_load(str(tmp_path / "bad.yaml"))
    with pytest.raises(ConfigError, match=r"cannot read '.*missing.toml'"):
        runtime.kumo.toml_load(str(tmp_path / "missing.toml"))


def test_python_policies_get_the_same_serde_functions(tmp_path: Path) -> None:
    (tmp_path / "d.toml").write_text('[source."ip-1"]\nsource_address = "10.0.0.1"\n')
    kumo = make_runtime().kumo
    data = kumo.toml_load(str(tmp_path / "d.toml"))
    assert data == {"source": {"ip-1": {"source_address": "10.0.0.1"}}}
    assert kumo.serde.toml_parse(kumo.serde.toml_encode(data)) == data
    assert kumo.serde.json_parse(kumo.serde.json_encode([1, {"a": None}])) == [1, {"a": None}]
    assert kumo.serde.yaml_parse(kumo.serde.yaml_encode({"k": [1, 2]})) == {"k": [1, 2]}
    (tmp_path / "c.json").write_text('# shell comment\n{"a": "//not a comment"}')
    assert kumo.json_load(str(tmp_path / "c.json")) == {"a": "//not a comment"}


async def test_json_encode_writes_kumocore_objects_and_pairs_skips_nil_fields(
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local domain = kumo.make_listener_domain { relay_from = { '10.0.0.0/24' } }
        local decoded = kumo.json_parse(kumo.json_encode(domain))
        kumo.test.mark(decoded.relay_from[1] .. ' ' .. decoded.log_oob)
        kumo.test.mark(kumo.serde.json_parse(kumo.serde.json_encode(domain)).relay_from[1])
        local keys = {}
        for k, v in pairs(domain) do keys[#keys + 1] = k end
        table.sort(keys)
        kumo.test.mark(table.concat(keys, ','))  -- ttl is nil: not listed, as in a table
    """, recorder=recorder)
    assert recorder.marks == [
        "10.0.0.0/24 Ignore", "10.0.0.0/24",
        "log_arf,log_oob,relay_from,relay_to,should_log_arf,should_log_oob"]
