"""Read a file a policy or a configuration names, refusing anything but a regular file.

A policy runs on the event loop. Opening a FIFO for reading waits for a writer, and
reading a device (``/dev/zero``, a terminal) may never end: either would stall every
client of the node. So the file is opened with ``O_NONBLOCK`` (an open that does not wait;
a regular file reads as usual), checked with ``fstat`` on that very descriptor (no race
with a rename in between), and read only when it is a regular file, at most ``limit + 1``
bytes so that the caller can tell a file over its bound without reading it whole.

Failures are :class:`OSError` with a ``strerror`` that says why, so that callers keep
their ``cannot read {name!r}: {exc.strerror}`` messages.
"""

from __future__ import annotations

import errno
import os
import stat

_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)
_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)


class NotARegularFile(OSError):
    """The name is a FIFO, a device, a socket or a directory: not read."""


def read_regular_file(path: str | bytes | os.PathLike[str], limit: int | None = None) -> bytes:
    """The bytes of the regular file at ``path``: all of them, or at most ``limit + 1``.

    Raises :class:`NotARegularFile` (``strerror`` names the kind of file) for anything
    else, and :class:`OSError` as ``open`` does for a missing or unreadable file.
    """
    fd = os.open(path, _FLAGS)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "an unknown kind")
            raise NotARegularFile(errno.EINVAL, f"not a regular file ({kind})", os.fsdecode(path))
        with os.fdopen(fd, "rb", closefd=False) as file:
            return file.read() if limit is None else file.read(limit + 1)
    finally:
        os.close(fd)


def read_regular_text(path: str | os.PathLike[str]) -> str:
    """The UTF-8 text of the regular file at ``path``, line endings read as ``open`` in
    text mode reads them (``\\r\\n`` and ``\\r`` become ``\\n``).

    Raises as :func:`read_regular_file`, and :class:`UnicodeDecodeError`.
    """
    text = read_regular_file(path).decode("utf-8")
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text
