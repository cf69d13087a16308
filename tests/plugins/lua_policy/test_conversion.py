"""Values crossing the bridge in both directions."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kumocore import PolicyError
from kumocore.config import EgressPathConfig, QueueConfig

from .support import Recorder, load


@dataclass(frozen=True)
class Answer:
    site_name: str
    hosts: list[str]
    by_pref: dict[int, list[str]]
    nested: dict[str, Any] = field(default_factory=dict)

    @property
    def first(self) -> str:
        return self.hosts[0]

    def method(self) -> str:  # methods are not data: Lua doesn't see them
        return "secret"


class Color(enum.Enum):
    RED = "red"


async def test_lua_tables_become_lists_and_dicts(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.test.mark { 1, 2, { 'x', 'y' } }
        kumo.test.mark { name = 'a', nested = { list = { 10, 20 }, flag = true } }
        kumo.test.mark { }
        kumo.test.mark { [1] = 'a', [3] = 'c' }
        kumo.test.mark { 'a', key = 'b' }
        kumo.test.mark { 1.5, 2, 2^53 }
    """, recorder=recorder)
    assert recorder.marks == [
        [1, 2, ["x", "y"]],
        {"name": "a", "nested": {"list": [10, 20], "flag": True}},
        {},
        {1: "a", 3: "c"},
        {1: "a", "key": "b"},
        [1.5, 2, 2.0**53],
    ]
    assert type(recorder.marks[5][1]) is int


async def test_python_containers_become_tables(tmp_path: Path) -> None:
    recorder = Recorder()
    recorder.value = {"hosts": ["a.", "b."], "by_pref": {5: ["a."]}, "pair": ("x", "y")}
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local v = kumo.test.value()
        kumo.test.mark(#v.hosts .. ' ' .. v.by_pref[5][1] .. ' ' .. v.pair[2])
        local seen = {}
        for _, host in ipairs(v.hosts) do seen[#seen + 1] = host end
        v.hosts[3] = 'c.'  -- a fresh, mutable table
        kumo.test.mark(table.concat(seen, ',') .. ' ' .. #v.hosts)
    """, recorder=recorder)
    assert recorder.marks == ["2 a. y", "a.,b. 3"]
    assert recorder.value["hosts"] == ["a.", "b."]


async def test_dataclasses_are_readable_proxies(tmp_path: Path) -> None:
    recorder = Recorder()
    recorder.value = Answer("site", ["mx1.", "mx2."], {10: ["mx1."]}, {"deep": {"n": 1}})
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local v = kumo.test.value()
        local s = tostring
        local parts = { v.site_name, v.first, v.by_pref[10][1], v.nested.deep.n }
        kumo.test.mark(table.concat(parts, ' '))
        kumo.test.mark(table.concat({ s(v.method), s(v._private), s(v.missing) }, ' '))
        local keys = {}
        for k in pairs(v) do keys[#keys + 1] = k end
        table.sort(keys)
        kumo.test.mark(table.concat(keys, ','))
        kumo.test.mark(type(v))
        kumo.test.mark(v)  -- passing it back gives the very object
        local ok, err = pcall(function() v.site_name = 'x' end)
        kumo.test.mark(tostring(ok) .. ' ' .. tostring(err):match('read%-only'))
    """, recorder=recorder)
    assert recorder.marks[:4] == [
        "site mx1. mx1. 1", "nil nil nil", "by_pref,first,hosts,nested,site_name", "table"]
    assert recorder.marks[4] is recorder.value
    assert recorder.marks[5] == "false read-only"


async def test_config_objects_return_to_python_unchanged(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        local cached = kumo.make_egress_path { connection_limit = 7 }
        kumo.test.mark(cached)
        kumo.test.mark(cached.max_deliveries_per_connection)
        kumo.on('get_egress_path_config', function() return cached end)
    """, recorder=recorder)
    config = await runtime.hooks.get_egress_path_config("gmail.com", "ip-1", "site")
    assert isinstance(config, EgressPathConfig)
    assert config is recorder.marks[0]
    assert config.connection_limit.limit == 7
    assert recorder.marks[1] == 1024


async def test_plain_table_returned_by_a_lookup_goes_through_its_maker(tmp_path: Path) -> None:
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('get_queue_config', function() return { egress_pool = 'p', max_age = '5m' } end)
    """)
    config = await runtime.hooks.get_queue_config("gmail.com", None, None, None)
    assert isinstance(config, QueueConfig)
    assert (config.egress_pool, config.max_age) == ("p", 300)


async def test_bad_plain_table_from_a_lookup_is_a_policy_error(tmp_path: Path) -> None:
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('get_queue_config', function() return { nonsense = 1 } end)
    """)
    with pytest.raises(PolicyError, match=r"kumo\.make_queue_config refused"):
        await runtime.hooks.get_queue_config("gmail.com", None, None, None)


async def test_enums_and_python_functions_cross_over(tmp_path: Path) -> None:
    recorder = Recorder()
    recorder.value = {"color": Color.RED, "double": lambda n: n * 2}
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local v = kumo.test.value()
        kumo.test.mark(v.color .. ' ' .. v.double(21))
    """, recorder=recorder)
    assert recorder.marks == ["red 42"]


async def test_lua_functions_reach_python_as_callables(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.test.mark(function(a, b) return a + b end)
    """, recorder=recorder)
    assert recorder.marks[0](2, 3) == 5


async def test_json_helpers_round_trip(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local text = kumo.json_encode { list = { 1, 2 }, name = 'x', empty = {} }
        local back = kumo.json_decode(text)
        kumo.test.mark(text)
        kumo.test.mark(back.list[2] .. back.name)
    """, recorder=recorder)
    assert json.loads(recorder.marks[0]) == {"list": [1, 2], "name": "x", "empty": {}}
    assert recorder.marks[1] == "2x"


async def test_cyclic_table_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="nested too deeply"):
        await load(tmp_path, """\
            local kumo = require 'kumo'
            local t = {}
            t.self = t
            kumo.test.mark(t)
        """)
