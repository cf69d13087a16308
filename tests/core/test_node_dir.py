"""The supervisor removes the private directories of nodes that were killed, and only those."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kumocore.node import node_dir
from kumocore.node.node_dir import PREFIX, STALE_AFTER, make_node_dir, remove_stale_node_dirs
from kumocore.throttle.node import socket_path

OLD = time.time() - STALE_AFTER - 10


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A short directory instead of pytest's: a node's socket path must fit AF_UNIX's 108
    bytes, which pytest's own paths outgrow on a machine that ran many test sessions."""
    path = Path(tempfile.mkdtemp(prefix="nd-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def dead_node_dir(base: Path, name: str, age: float = OLD) -> Path:
    """A directory as a killed supervisor leaves it: its socket file, nobody listening."""
    path = base / f"{PREFIX}{name}"
    path.mkdir()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(socket_path(path)))
    (path / "worker-0.sock").touch()
    os.utime(path, (age, age))
    return path


def test_a_killed_nodes_directory_is_removed_when_the_next_node_starts(tmp_path: Path) -> None:
    dead = dead_node_dir(tmp_path, "dead")
    created = Path(make_node_dir(str(tmp_path)))
    assert not dead.exists()
    assert created.is_dir() and created.name.startswith(PREFIX)
    assert created.stat().st_mode & 0o777 == 0o700


def test_a_live_nodes_directory_is_kept_however_old(tmp_path: Path) -> None:
    path = tmp_path / f"{PREFIX}live"
    path.mkdir()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(socket_path(path)))
        listener.listen()
        os.utime(path, (OLD, OLD))
        assert remove_stale_node_dirs(tmp_path) == 0
    assert path.is_dir()


def test_a_directory_younger_than_the_grace_period_is_kept(tmp_path: Path) -> None:
    # A node that is starting has made its directory but not bound its socket yet.
    young = dead_node_dir(tmp_path, "young", age=time.time() - STALE_AFTER / 2)
    starting = tmp_path / f"{PREFIX}starting"
    starting.mkdir()
    assert remove_stale_node_dirs(tmp_path) == 0
    assert young.is_dir() and starting.is_dir()


def test_only_node_directories_are_touched(tmp_path: Path) -> None:
    other = tmp_path / "something-else"
    other.mkdir()
    os.utime(other, (OLD, OLD))
    a_file = tmp_path / f"{PREFIX}file"
    a_file.write_text("not a directory")
    os.utime(a_file, (OLD, OLD))
    target = dead_node_dir(tmp_path, "target")
    link = tmp_path / f"{PREFIX}link"
    link.symlink_to(target)
    assert remove_stale_node_dirs(tmp_path) == 1
    assert other.is_dir() and a_file.is_file() and link.is_symlink() and not target.exists()


def test_one_start_removes_a_bounded_number_of_leftovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(node_dir, "MAX_REMOVED", 3)
    for n in range(5):
        dead_node_dir(tmp_path, str(n))
    assert remove_stale_node_dirs(tmp_path) == 3
    assert remove_stale_node_dirs(tmp_path) == 2
    assert not list(tmp_path.iterdir())


def test_a_missing_temporary_directory_is_no_error(tmp_path: Path) -> None:
    assert remove_stale_node_dirs(tmp_path / "gone") == 0
