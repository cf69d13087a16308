"""Private files and directories: spool, logs and keys are readable by their owner only.

Mail in the spool and addresses in the logs are private to the operator, so kumocore
creates directories ``0700`` and files ``0600`` (``kumocore serve`` also sets the process
umask to ``077``, which covers files libraries create, such as RocksDB's). A directory
kumocore is told to use must be owned by the user kumocore runs as and not be writable by
group or others, and no ancestor may let others replace it (writable by others without
the sticky bit): otherwise another local user could pre-create it (e.g. under ``/tmp``),
read the spool or move it away. Such a directory refuses the start with one line naming
it (:class:`UnsafePathError`, a :class:`ConfigError`: exit status 2). Part of the public
API: plugins that store files (local logs) use it too.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from kumocore.errors import ConfigError

__all__ = ["DIR_MODE", "FILE_MODE", "PRIVATE_UMASK", "UnsafePathError", "check_private_dir",
           "create_private_file", "private_dir", "restrict_umask", "tighten_tree"]

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600
_GROUP_OTHER_WRITE = stat.S_IWGRP | stat.S_IWOTH


class UnsafePathError(ConfigError):
    """A directory another user controls; kumocore refuses to keep mail or logs in it."""


def restrict_umask() -> int:
    """Make every file this process creates private (``umask 077``); returns the old one."""
    return os.umask(PRIVATE_UMASK)


def private_dir(path: str | Path, what: str) -> Path:
    """Create ``path`` (and missing parents) with mode 0700, then :func:`check_private_dir`."""
    directory = Path(path)
    missing = [p for p in (directory, *directory.parents) if not p.exists()]
    for parent in reversed(missing):
        try:
            parent.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass  # created meanwhile (another worker): checked below like any other
        except OSError as exc:
            raise ConfigError(f"{what}: cannot create {str(parent)!r}: {exc}") from exc
    check_private_dir(directory, what)
    return directory


def check_private_dir(path: str | Path, what: str) -> None:
    """Raise :class:`UnsafePathError` unless only this user can change ``path``."""
    directory = Path(path).resolve()
    uid = os.geteuid()
    try:
        st = directory.stat()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot use {str(directory)!r}: {exc}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePathError(f"{what}: {str(directory)!r} is not a directory")
    if st.st_uid != uid:
        raise UnsafePathError(
            f"{what}: refusing {str(directory)!r}: it is owned by uid {st.st_uid}, not by "
            f"uid {uid} that kumocore runs as (another user may have created it)")
    if st.st_mode & _GROUP_OTHER_WRITE:
        raise UnsafePathError(
            f"{what}: refusing {str(directory)!r}: it is writable by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); chmod go-w it")
    for parent in directory.parents:
        pst = parent.stat()
        if pst.st_mode & stat.S_IWOTH and not pst.st_mode & stat.S_ISVTX:
            raise UnsafePathError(
                f"{what}: refusing {str(directory)!r}: its parent {str(parent)!r} is "
                f"writable by others without the sticky bit (mode "
                f"{stat.S_IMODE(pst.st_mode):04o}), so another user could replace it")


def create_private_file(path: str | Path) -> int:
    """Create ``path`` exclusively with mode 0600 (never an existing file); returns the fd."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)


def tighten_tree(path: str | Path) -> None:
    """Remove group/other bits from everything under ``path`` that this user owns (files a
    library created under a laxer umask, e.g. RocksDB's when run in-process)."""
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            _tighten(os.path.join(root, name))
    _tighten(str(path))


def _tighten(entry: str) -> None:
    # The library may delete files while we walk (RocksDB removes obsolete WAL, MANIFEST
    # and OPTIONS files from background threads): a vanished file needs no tightening.
    with contextlib.suppress(FileNotFoundError):
        st = os.lstat(entry)
        if (st.st_uid == os.geteuid() and not stat.S_ISLNK(st.st_mode)
                and st.st_mode & 0o077):
            os.chmod(entry, stat.S_IMODE(st.st_mode) & ~0o077)
