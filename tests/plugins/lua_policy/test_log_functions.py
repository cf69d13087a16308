"""kumo.log_error/log_warn/log_info/log_debug: KumoMTA's record, ``file:line: arg arg ...``.

Each argument reads as Lua's ``tostring`` shows it, the arguments are joined by spaces, and
the record names the policy file and line of the call (KumoMTA's ``kumo.log_warn`` page).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
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


def _records(logs: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(r["log_level"], r["event"]) for r in logs]


async def test_lua_log_arguments_read_as_lua_tostring_joined_by_spaces(tmp_path: Path) -> None:
    with capture_logs() as logs:
        await load(tmp_path, """\
            local kumo = require 'kumo'
            kumo.log_warn('Logging something', true, false, 42, nil, 1.5, 2.0, 2^53, { 1, 2, 3 })
        """)
    where = f"{tmp_path / 'policy.lua'}:2"
    [(level, event)] = _records(logs)
    assert level == "warning"
    assert re.fullmatch(
        re.escape(f"{where}: Logging something true false 42 nil 1.5 2.0 9.007199254741e+15 ")
        + r"table: 0x[0-9a-f]+", str(event)), event


async def test_each_lua_log_function_names_the_calling_file_and_line_at_its_level(
    tmp_path: Path,
) -> None:
    with capture_logs() as logs:
        await load(tmp_path, """\
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
    path = tmp_path / "policy.lua"
    assert _records(logs) == [
        ("error", f"{path}:2: e"), ("warning", f"{path}:3: w"), ("info", f"{path}:5: i 1"),
        ("debug", f"{path}:8: d"), ("info", f"{path}:9: "),
    ]


async def test_lua_log_names_the_line_in_a_required_module(tmp_path: Path) -> None:
    (tmp_path / "helper.lua").write_text(
        "local kumo = require 'kumo'\nreturn function(x)\n  kumo.log_info('from helper', x)\nend\n")
    with capture_logs() as logs:
        await load(tmp_path, """\
            local kumo = require 'kumo'
            require 'helper' (7)
        """)
    assert _records(logs) == [("info", f"{tmp_path / 'helper.lua'}:3: from helper 7")]


async def test_lua_log_uses_tostring_metamethods_and_escapes_invalid_utf8(tmp_path: Path) -> None:
    with capture_logs() as logs:
        await load(tmp_path, """\
            local kumo = require 'kumo'
            local named = setmetatable({}, { __tostring = function() return 'custom' end })
            kumo.log_info(named, kumo.time.parse_duration(300), 'ok' .. string.char(0xff, 0x41))
        """)
    assert _records(logs) == [("info", f"{tmp_path / 'policy.lua'}:3: custom 5m ok\\xFFA")]


def test_python_callers_get_their_file_and_line_and_str_of_values() -> None:
    kumo = make_runtime().kumo
    with capture_logs() as logs:
        line = sys._getframe().f_lineno + 1
        kumo.log_info("count", 3, None, [1, 2], b"ok\xff")
    assert _records(logs) == [("info", f"{__file__}:{line}: count 3 None [1, 2] ok\\xFF")]
