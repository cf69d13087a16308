"""The supervisor's private directory: the workers' admin sockets and the node's throttle
socket (``kumocore serve --workers``).

It lives in the system's temporary directory, readable by this user only, and the
supervisor removes it when it stops. A supervisor that was killed (``kill -9``, the OOM
killer, a power cut of the container) cannot, so a new one first removes the directories
such nodes left: ours, older than :data:`STALE_AFTER`, whose throttle socket nobody
listens on. A live node's socket answers, and a node that is starting right now is younger
than the grace period, so neither is touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import structlog

from kumocore.throttle.node import socket_path

log = structlog.get_logger("kumocore.node.node_dir")

PREFIX = "kumocore-node-"
#: A directory younger than this may belong to a node whose sockets are not bound yet.
STALE_AFTER = 60.0
#: How many leftovers one start removes at most (the rest go at the next start).
MAX_REMOVED = 1000


def make_node_dir(parent: str | None = None) -> str:
    """A new private directory for this node, after removing dead nodes' leftovers."""
    base = Path(parent or tempfile.gettempdir())
    removed = remove_stale_node_dirs(base)
    if removed:
        log.info("removed directories of nodes that did not stop", count=removed, dir=str(base))
    return tempfile.mkdtemp(prefix=PREFIX, dir=base)


def remove_stale_node_dirs(base: Path, now: float | None = None) -> int:
    """Remove ``base``'s node directories whose node is gone; how many were removed."""
    now = time.time() if now is None else now
    removed = 0
    with contextlib.suppress(OSError), os.scandir(base) as entries:
        for entry in entries:
            if removed >= MAX_REMOVED:
                break
            if entry.name.startswith(PREFIX) and _is_stale(Path(entry.path), now):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed += 1
    return removed


def _is_stale(path: Path, now: float) -> bool:
    try:
        info = path.lstat()
    except OSError:
        return False
    if not path.is_dir() or path.is_symlink() or info.st_uid != os.getuid():
        return False
    if now - info.st_mtime < STALE_AFTER:
        return False
    return not _answers(socket_path(path))


def _answers(path: Path) -> bool:
    """Whether a process listens on the Unix socket ``path`` (a missing one: no)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            return False
        except OSError:
            return True  # unsure (a full backlog, a timeout): leave it
    return True
