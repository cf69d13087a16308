"""``kumo.fs.read_dir`` (and its older name ``kumo.read_dir``), ``kumo.fs.metadata_for_path``
and ``kumo.fs.symlink_metadata_for_path``.

The file system work runs in a worker thread, so a slow disk holds up only the calling
handler, never the event loop (KumoMTA's reason for ``kumo.fs``): Lua policies call them
as plain functions, Python policies await them. They act on paths the policy chooses;
nothing reachable from the network calls them.

``read_dir`` returns the entries' paths (the directory joined with each name, so absolute
when the directory is), in the order the file system lists them. Metadata is a table of
``path``, ``is_file``, ``is_dir``, ``is_symlink``, ``len``, ``readonly`` and the POSIX
``stat`` fields (``dev``, ``ino``, ``mode``, ``nlink``, ``uid``, ``gid``, ``rdev``,
``size``, ``blksize``, ``blocks``; ``atime``, ``mtime``, ``ctime`` as ``kumo.time`` Time
objects, to the microsecond; ``ctime`` is the inode change time, as in KumoMTA). A path
that cannot be read raises the system's reason as Rust words it: ``No such file or
directory (os error 2)``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import stat
from collections.abc import Callable
from typing import Any

from kumocore import ConfigError
from kumocore_lua_policy.stdlib.clock import Time


def _os_error(exc: OSError) -> ValueError:
    """``exc`` worded as KumoMTA reports an I/O error (no Python ``[Errno n]`` prefix); a
    ValueError, so that the policy sees that text alone after the function's name."""
    return ValueError(f"{exc.strerror} (os error {exc.errno})" if exc.errno else str(exc))


def _path(name: str, path: Any) -> str:
    if not isinstance(path, str):
        raise ConfigError(f"kumo.fs.{name}: the path must be a string, got {path!r}")
    return path


def _utf8(path: str) -> str:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        shown = path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        raise ValueError(f"path entry {shown} is not representable as utf8") from None
    return path


def _list(path: str) -> list[str]:
    try:
        with os.scandir(path) as entries:
            return [_utf8(os.path.join(path, entry.name)) for entry in entries]
    except OSError as exc:
        raise _os_error(exc) from None


async def read_dir(path: Any) -> list[str]:
    """The paths of the directory's entries (the directory joined with each name), in the
    file system's order. ``kumo.read_dir`` is the older name."""
    return await asyncio.to_thread(_list, _path("read_dir", path))


def _time(nanos: int) -> Time:
    seconds, rest = divmod(nanos, 1_000_000_000)
    when = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return Time(when + dt.timedelta(microseconds=rest // 1000))


def describe(path: str, info: os.stat_result) -> dict[str, Any]:
    """The metadata table of ``path`` from its ``stat`` result."""
    return {
        "path": path,
        "is_file": stat.S_ISREG(info.st_mode),
        "is_dir": stat.S_ISDIR(info.st_mode),
        "is_symlink": stat.S_ISLNK(info.st_mode),
        "len": info.st_size,
        # As Rust's Permissions::readonly: no write bit for anyone.
        "readonly": info.st_mode & 0o222 == 0,
        "dev": info.st_dev,
        "ino": info.st_ino,
        "mode": info.st_mode,
        "nlink": info.st_nlink,
        "uid": info.st_uid,
        "gid": info.st_gid,
        "rdev": info.st_rdev,
        "size": info.st_size,
        "blksize": info.st_blksize,
        "blocks": info.st_blocks,
        "atime": _time(info.st_atime_ns),
        "mtime": _time(info.st_mtime_ns),
        "ctime": _time(info.st_ctime_ns),
    }


def _stat(path: str, follow: bool) -> dict[str, Any]:
    try:
        info = os.stat(path, follow_symlinks=follow)
    except OSError as exc:
        raise _os_error(exc) from None
    return describe(path, info)


async def metadata_for_path(path: Any) -> dict[str, Any]:
    """The file's attributes, following symbolic links: ``is_file``, ``is_dir``,
    ``is_symlink``, ``len``, ``readonly``, the ``stat`` fields and ``atime``/``mtime``/
    ``ctime`` as Time objects."""
    return await asyncio.to_thread(_stat, _path("metadata_for_path", path), True)


async def symlink_metadata_for_path(path: Any) -> dict[str, Any]:
    """As ``kumo.fs.metadata_for_path``, about a symbolic link itself."""
    return await asyncio.to_thread(_stat, _path("symlink_metadata_for_path", path), False)


def fs_functions() -> dict[str, Callable[..., Any]]:
    return {
        "read_dir": read_dir,
        "fs.read_dir": read_dir,
        "fs.metadata_for_path": metadata_for_path,
        "fs.symlink_metadata_for_path": symlink_metadata_for_path,
    }
