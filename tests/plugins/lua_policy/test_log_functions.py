"""kumo.log_error/log_warn/log_info/log_debug: KumoMTA's record, ``file:line: arg arg ...``.

Each argument reads as Lua's ``tostring`` shows it, the arguments are joined by spaces, and
the record names the policy file and line of the call (KumoMTA's ``kumo.log_warn`` page).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from .support import load, make_runtime


@pytest.fixture(autouse=True)
def _debug_level() -> Iterator[None]:
    """Let debug records through (a server started by another test may have set a level)."""
    wrapper = structlog.get_config()["wrapper_class"]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    yield
    structlog.configure(wrapper_class=wrapper)


def _records(logs: Sequence[Mapping[str, object]]) -> list[tuple[object, object]]:
    return [(r["log_level"], r["event"]) for r in logs]


async def test_lua_log_arguments_read_as_lua_tostring_joined_by_spaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # a short policy name, which the record shows whole
    with capture_logs() as logs:
        await load(Path("."), """\
            local kumo = require 'kumo'
            kumo.log_warn('Logging something', true, false, 42, nil, 1.5, 2.0, 2^53, { 1, 2, 3 })
        """)
    where = "policy.lua:2"
    [(level, event)] = _records(logs)
    assert level == "warning"
    assert re.fullmatch(
        re.escape(f"{where}: Logging something true false 42 nil 1.5 2.0 9.007199254741e+15 ")
        + r"table: 0x[0-9a-f]+", str(event)), event


async def test_each_lua_log_function_names_the_calling_file_and_line_at_its_level(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    with capture_logs() as logs:
        await load(Path("."), """\
            local kumo = require 'kumo'
            kumo.log_error('e')
            kumo.log_warn('w')
            local function helper()
              kumo.log_info('i', 1)
            end
            helper()
            pcall(kumo.log_debug, 'd')
            kumo.log_info()
        """)
    path = "policy.lua"
    assert _records(logs) == [
        ("error", f"{path}:2: e"), ("warning", f"{path}:3: w"), ("info", f"{path}:5: i 1"),
        ("debug", f"{path}:8: d"), ("info", f"{path}:9: "),
    ]


async def test_lua_log_names_a_required_module_by_lua_short_src_keeping_the_tail(
    tmp_path: Path,
) -> None:
    # A module is loaded as a file ('@path'): past 59 characters Lua's short_src (and so
    # KumoMTA's record) is '...' and the last 56 characters.
    directory = tmp_path / ("m" * 60)
    directory.mkdir()
    (directory / "helper.lua").write_text(
        "local kumo = require 'kumo'\nreturn function(x)\n  kumo.log_info('from helper', x)\nend\n")
    with capture_logs() as logs:
        await load(directory, """\
            local kumo = require 'kumo'
            require 'helper' (7)
        """)
    tail = str(directory / "helper.lua")[-56:]
    assert _records(logs) == [("info", f"...{tail}:3: from helper 7")]


async def test_lua_log_abbreviates_a_long_policy_file_name_keeping_its_start(
    tmp_path: Path,
) -> None:
    # KumoMTA loads the policy file under its bare path, a "string" source to Lua: a name
    # of 45 characters or more keeps its first 45 and gets '...'.
    directory = tmp_path / ("p" * 50)
    with capture_logs() as logs:
        await load(directory, """\
            local kumo = require 'kumo'
            kumo.log_warn('long')
        """)
    head = str(directory / "policy.lua")[:45]
    assert _records(logs) == [("warning", f"{head}...:2: long")]


async def test_lua_log_shows_a_44_character_policy_name_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    name = "n" * 40 + ".lua"
    with capture_logs() as logs:
        await load(Path("."), """\
            require('kumo').log_info('x')
        """, name=name)
    assert _records(logs) == [("info", f"{name}:1: x")]


async def test_lua_log_uses_tostring_metamethods_and_escapes_invalid_utf8(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    with capture_logs() as logs:
        await load(Path("."), """\
            local kumo = require 'kumo'
            local named = setmetatable({}, { __tostring = function() return 'custom' end })
            kumo.log_info(named, kumo.time.parse_duration(300), 'ok' .. string.char(0xff, 0x41))
        """)
    assert _records(logs) == [("info", "policy.lua:3: custom 5m ok\\xFFA")]


def test_python_callers_get_their_file_and_line_and_str_of_values() -> None:
    kumo = make_runtime().kumo
    with capture_logs() as logs:
        line = sys._getframe().f_lineno + 1
        kumo.log_info("count", 3, None, [1, 2], b"ok\xff")
    assert _records(logs) == [("info", f"{__file__}:{line}: count 3 None [1, 2] ok\\xFF")]
