"""The LocalDisk spool kind: durable files, group commit, torn writes ignored."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kumocore import ConfigError
from kumocore.spool.localdisk import LocalDiskSpool


async def test_values_survive_reopening_the_spool(tmp_path: Path) -> None:
    spool = LocalDiskSpool("data", str(tmp_path))
    await spool.put("01aa", b"one")
    await spool.put("02bb", b"two")
    await spool.delete("02bb")
    await spool.close()
    reopened = LocalDiskSpool("data", str(tmp_path))
    assert await reopened.get("01aa") == b"one"
    assert await reopened.get("02bb") is None
    assert [item async for item in reopened.scan()] == [("01aa", b"one")]


async def test_concurrent_puts_are_all_durable(tmp_path: Path) -> None:
    spool = LocalDiskSpool("meta", str(tmp_path))
    keys = [f"{n:032x}" for n in range(200)]
    await asyncio.gather(*(spool.put(key, key.encode()) for key in keys))
    assert [key async for key, _ in spool.scan()] == sorted(keys)


async def test_a_torn_write_left_by_a_crash_is_discarded_at_open(tmp_path: Path) -> None:
    (tmp_path / "ab").mkdir()
    (tmp_path / "ab" / "abcd.tmp").write_bytes(b"half a mess")
    spool = LocalDiskSpool("data", str(tmp_path))
    assert [item async for item in spool.scan()] == []
    assert not (tmp_path / "ab" / "abcd.tmp").exists()


def test_unusable_path_is_a_config_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="file/spool"):
        LocalDiskSpool("data", str(blocker / "spool"))
