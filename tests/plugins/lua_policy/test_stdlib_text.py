"""kumo.string.* and kumo.regex.* / kumo.regex_set_map from Lua and from Python."""

from __future__ import annotations

from pathlib import Path

import pytest

from kumocore import PolicyError

from .support import Recorder, load, make_runtime


async def test_lua_string_functions(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local s = kumo.string
        kumo.test.mark(kumo.json_encode(s.split('Mary had a little lamb', ' ')))
        kumo.test.mark(kumo.json_encode(s.rsplit('a.b.c', '.')))
        kumo.test.mark(kumo.json_encode(s.splitn('Mary had a little lamb', 3, ' ')))
        kumo.test.mark(kumo.json_encode(s.rsplitn('Mary had a little lamb', 3, ' ')))
        kumo.test.mark(kumo.json_encode(s.split_whitespace('  a \\t b\\n')))
        kumo.test.mark(s.replace('foo foo', 'foo', 'bar') .. '|'
          .. s.replacen('foo foo foo', 'foo', 'x', 2))
        kumo.test.mark(s.trim('  x  ') .. '|' .. s.trim_start('  x ') .. '|'
          .. s.trim_end(' x  '))
        kumo.test.mark(tostring(s.starts_with('hello', 'he'))
          .. tostring(s.ends_with('hello', 'x')))
        kumo.test.mark(s.wrap(string.rep('A', 12), 5, 8))
    """, recorder=recorder)
    assert recorder.marks == [
        '["Mary","had","a","little","lamb"]', '["c","b","a"]', '["Mary","had","a little lamb"]',
        '["lamb","little","Mary had a"]', '["a","b"]', "bar bar|x x foo", "x|x | x", "truefalse",
        "AAAAAAAA\r\n\tAAAA",
    ]


async def test_lua_regex_methods_and_named_captures(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local regex = require 'kumo.regex'
        local re = regex.compile "'(?<title>[^']+)'\\\\s+\\\\((?<year>\\\\d{4})\\\\)"
        local cap = re:captures "Not my favorite movie: 'Citizen Kane' (1941)."
        kumo.test.mark(cap[0] .. '|' .. cap[1] .. '|' .. cap.title .. '|' .. cap.year)
        local o = kumo.regex.compile 'o+'
        kumo.test.mark(tostring(o:is_match 'food') .. ' ' .. o:find 'fooood')
        kumo.test.mark(kumo.json_encode(o:find_all 'foo boo'))
        local d = kumo.regex.compile '(?<y>\\\\d{4})-(\\\\d{2})'
        kumo.test.mark(d:replace('2024-05 2025-06', '$2/${y}'))
        kumo.test.mark(d:replace_all('2024-05 2025-06', '$2/$y $$'))
        kumo.test.mark(kumo.json_encode(kumo.regex.compile('[,;]'):split 'a,b;c'))
        kumo.test.mark(kumo.regex.escape 'a.b*c')
        kumo.test.mark(o:captures 'xyz' == nil)
    """, recorder=recorder)
    assert recorder.marks == [
        "'Citizen Kane' (1941)|Citizen Kane|Citizen Kane|1941", "true oooo", '["oo","oo"]',
        "05/2024 2025-06", "05/2024 $ 06/2025 $", '["a","b","c"]', r"a\.b\*c", True,
    ]


async def test_regex_set_map_answers_the_matching_patterns_value(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local map = kumo.regex_set_map.new { hello = 'hello', bye = 'bye', later = 'bye',
                                             ['Good day'] = 'hello' }
        kumo.test.mark(map['hello there'])
        kumo.test.mark(map['goodbye'])
        kumo.test.mark(map['see you later'])
        kumo.test.mark(map['Good day to you'])
        kumo.test.mark(tostring(map['not.set']))
        local ok, err = pcall(function() map.x = 1 end)
        kumo.test.mark(tostring(err):match('immutable') ~= nil)
    """, recorder=recorder)
    assert recorder.marks == ["hello", "bye", "bye", "hello", "nil", True]


async def test_invalid_regex_fails_naming_the_policy_line(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        await load(tmp_path, """\
            local kumo = require 'kumo'
            local re = kumo.regex.compile '(unclosed'
        """)
    assert info.value.where == f"{tmp_path / 'policy.lua'}:2"
    assert "invalid regex '(unclosed'" in str(info.value)


def test_python_gets_the_same_string_and_regex_functions() -> None:
    kumo = make_runtime().kumo
    assert kumo.string.rsplitn("a b c d", 2, " ") == ["d", "a b c"]
    assert kumo.string.trim("\t x \n") == "x"
    re = kumo.regex.compile(r"(?<user>[^@]+)@(?<domain>.+)")
    assert re.captures("bob@example.com") == {
        0: "bob@example.com", 1: "bob", 2: "example.com", "user": "bob", "domain": "example.com"}
    assert re.replace("bob@example.com", "${domain}:$user") == "example.com:bob"
    assert kumo.regex.is_match(r"^\d+$", "123")
    assert kumo.regex_set_map.new({"^a": 1, "b$": 2}).get("xb") == 2
    assert kumo.string.split("abc", "") == ["", "a", "b", "c", ""]  # as Rust's str::split
