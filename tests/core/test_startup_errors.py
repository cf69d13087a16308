"""Start-up failures are one line naming what failed, and exit status 2 — never a traceback.

Each case runs the real ``kumocore`` script on a small Lua policy.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

KUMOCORE = str(Path(sys.executable).with_name("kumocore"))

POLICY = """
local kumo = require 'kumo'
kumo.on('init', function()
  kumo.define_spool { name = 'data', path = '{dir}/data', kind = 'LocalDisk' }
  kumo.define_spool { name = 'meta', path = '{dir}/meta', kind = 'LocalDisk' }
  kumo.start_esmtp_listener { listen = '{listen}', relay_hosts = { '127.0.0.1' } }
end)
"""


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


def _policy(tmp_path: Path, listen: str) -> Path:
    path = tmp_path / "policy.lua"
    path.write_text(POLICY.replace("{dir}", str(tmp_path)).replace("{listen}", listen))
    return path


def _serve(policy: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUMOCORE, "serve", "--policy", str(policy), "--shutdown-timeout", "2",
         "--workers", "1", *extra],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error" in line.lower()]


def test_a_taken_port_is_one_line_naming_the_listener_and_exit_2(
    tmp_path: Path, taken_port: int
) -> None:
    result = _serve(_policy(tmp_path, f"127.0.0.1:{taken_port}"))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert (
        f"kumocore: error: ESMTP listener 127.0.0.1:{taken_port}: cannot bind: "
        "Address already in use" in result.stderr
    )


def test_an_address_not_on_this_host_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = _serve(_policy(tmp_path, "192.0.2.1:2525"))  # TEST-NET-1: never on this host
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "ESMTP listener 192.0.2.1:2525: cannot bind: " in result.stderr


def test_an_unwritable_spool_path_is_one_line_naming_the_spool(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    policy = tmp_path / "policy.lua"
    policy.write_text(POLICY.replace("{dir}", str(blocker)).replace("{listen}", "127.0.0.1:0"))
    result = _serve(policy)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"kumocore: error: spool 'data': cannot create '{blocker}/data'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_workers_with_a_taken_port_stop_before_ready_with_the_workers_reason(
    tmp_path: Path, taken_port: int
) -> None:
    result = _serve(_policy(tmp_path, f"127.0.0.1:{taken_port}"), "--workers", "2")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "kumocore ready" not in result.stderr
    assert f"ESMTP listener 127.0.0.1:{taken_port}: cannot bind" in result.stderr
    assert "keeps dying" not in result.stderr  # no restart loop


def test_cli_refuses_bad_numbers_and_log_levels_with_usage_errors() -> None:
    for args in (["serve", "--workers", "0", "--policy", "p"],
                 ["serve", "--workers", "-1", "--policy", "p"],
                 ["serve", "--shutdown-timeout", "-5", "--policy", "p"],
                 ["--log-level", "verbose", "plugins"]):  # fmt: skip
        result = subprocess.run([KUMOCORE, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert "error: argument" in result.stderr


def test_log_level_is_accepted_after_the_subcommand() -> None:
    result = subprocess.run([KUMOCORE, "plugins", "--log-level", "debug"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "lua_policy" in result.stdout


def test_help_is_plain_text_with_examples() -> None:
    result = subprocess.run([KUMOCORE, "--help"], capture_output=True, text=True, timeout=60)
    assert "``" not in result.stdout
    assert "examples:" in result.stdout
    assert "kumocore serve --policy" in result.stdout
