"""Packaging: the systemd unit and the bundled policy are package data, printed by the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

KUMOCORE = str(Path(sys.executable).with_name("kumocore"))


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KUMOCORE, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_systemd_unit_names_the_running_kumocore_script_and_stops_retrying_config_errors() -> None:
    result = _run("systemd-unit")
    assert result.returncode == 0, result.stderr
    assert f"ExecStart={KUMOCORE} serve --policy /etc/kumocore/policy.lua" in result.stdout
    assert "RestartPreventExitStatus=2" in result.stdout
    assert "UMask=0077" in result.stdout
    assert "{executable}" not in result.stdout


def test_systemd_unit_takes_an_explicit_executable() -> None:
    result = _run("systemd-unit", "--executable", "/opt/kumocore/bin/kumocore")
    assert "ExecStart=/opt/kumocore/bin/kumocore serve" in result.stdout


def test_default_policy_path_is_a_readable_lua_file_from_any_directory(tmp_path: Path) -> None:
    result = _run("default-policy", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path.is_absolute() and path.name == "default-policy.lua"
    assert "require 'kumo'" in path.read_text()
