"""Private directories (issue 14, finding 18): what kumocore refuses to keep mail in."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kumocore.node.fsmode import (
    UnsafePathError,
    check_private_dir,
    create_private_file,
    private_dir,
    tighten_tree,
)


def test_private_dir_creates_every_missing_level_0700(tmp_path: Path) -> None:
    made = private_dir(tmp_path / "a" / "b", "spool 'data'")
    for path in (tmp_path / "a", made):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700


def test_a_directory_owned_by_another_user_is_refused_naming_it(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can give a directory to another user")
    victim = tmp_path / "spool"
    victim.mkdir(mode=0o700)
    os.chown(victim, 65534, 65534)
    with pytest.raises(UnsafePathError, match=r"spool 'data': refusing .*owned by uid 65534"):
        check_private_dir(victim, "spool 'data'")


def test_a_group_or_world_writable_directory_is_refused(tmp_path: Path) -> None:
    loose = tmp_path / "logs"
    loose.mkdir()
    loose.chmod(0o775)
    with pytest.raises(UnsafePathError, match=r"writable by group or others \(mode 0775\)"):
        check_private_dir(loose, "log_dir")


def test_a_parent_others_can_write_without_sticky_bit_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # like /tmp without its sticky bit
    with pytest.raises(UnsafePathError, match="without the sticky bit"):
        private_dir(shared / "kumo", "spool 'meta'")
    shared.chmod(0o1777)  # /tmp as it is: others cannot rename our entries
    assert private_dir(shared / "kumo2", "spool 'meta'").is_dir()


def test_private_files_and_tightening(tmp_path: Path) -> None:
    os.close(create_private_file(tmp_path / "f"))
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        create_private_file(tmp_path / "f")
    (tmp_path / "lax").write_bytes(b"x")
    (tmp_path / "lax").chmod(0o644)
    tighten_tree(tmp_path)
    assert stat.S_IMODE((tmp_path / "lax").stat().st_mode) == 0o600


@pytest.mark.parametrize(("env", "expected"), [
    ({"KUMOCORE_VAR": "/srv/kumo"}, "/srv/kumo/spool/data"),
    ({"XDG_STATE_HOME": "/home/u/.local/state"}, "/home/u/.local/state/kumocore/spool/data"),
    ({}, "./var/spool/data"),
])
async def test_bundled_policy_keeps_its_data_in_a_per_user_directory(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    from kumocore.node.runtime import Runtime

    for name in ("KUMOCORE_VAR", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runtime = Runtime()
    await runtime.load(Path(__file__).parents[2] / "kumocore/defaults/default-policy.lua")
    assert runtime.config.spools["data"].path == expected
