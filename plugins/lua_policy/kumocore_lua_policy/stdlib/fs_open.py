"""``kumo.fs.open(FILENAME, OPT_MODE)``: a file a policy reads or writes without blocking.

Each operation runs in a worker thread, so only the calling handler waits for the disk.
The object has KumoMTA's methods, each to be called ``file:method(...)`` in Lua (awaited
in Python): ``read(OPT_SIZE)`` (the rest of the file, or at most ``OPT_SIZE`` bytes, as a
byte string), ``write(BUFFER)`` (all of it; binary strings too), ``seek(OPT_WHENCE,
OPT_POS)`` (``'cur'``, ``'set'`` or ``'end'``, an integer offset, in either order; returns
the new position), ``flush()`` and ``close()``. Writes go straight to the file, so
``flush`` has nothing to do but check the file is open.

The modes are KumoMTA's, with its exact open flags: ``r``, ``w`` (write only, created,
*not* truncated), ``a`` (append), ``r+`` (read and write, created), ``w+`` (read and
write, created, truncated), ``a+`` (read and append, created); each may end in ``b``
(``r+b``), which changes nothing. New files get mode 0666 less the umask. Error texts are
KumoMTA's (``failed to open PATH with mode r: No such file or directory (os error 2)``).

A worker thread cannot be stopped, so a call whose handler is cancelled (a timeout, a
dropped connection) leaves its thread running: a descriptor that thread opens is closed
when it returns, and the file's next operation (or its close) waits for it, so that one
descriptor is never used by two threads at once nor closed under one.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Callable
from typing import Any

from kumocore import ConfigError
from kumocore_lua_policy.byte_strings import takes_bytes

_CREATE = os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
_FLAGS = {
    "r": os.O_RDONLY,
    "w": os.O_WRONLY | _CREATE,
    "a": os.O_WRONLY | os.O_APPEND | _CREATE,
    "r+": os.O_RDWR | _CREATE,
    "w+": os.O_RDWR | os.O_TRUNC | _CREATE,
    "a+": os.O_RDWR | os.O_APPEND | _CREATE,
}
_WHENCE = {"set": os.SEEK_SET, "cur": os.SEEK_CUR, "end": os.SEEK_END}
_CHUNK = 1 << 20


def _io_error(exc: OSError) -> str:
    return f"{exc.strerror} (os error {exc.errno})" if exc.errno else str(exc)


def _read_upto(fd: int, size: int) -> bytes:
    """At most ``size`` bytes, in chunks: a buffer of ``size`` is not set aside first
    (``read(1e12)`` on a small file must not ask for a terabyte). A short chunk means no
    more is there now, so a pipe answers with what it holds, as one read would."""
    chunks = []
    while size > 0:
        want = min(size, _CHUNK)
        chunk = os.read(fd, want)
        chunks.append(chunk)
        size -= len(chunk)
        if len(chunk) < want:
            break
    return b"".join(chunks)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, _CHUNK):
        chunks.append(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _seek_target(args: tuple[Any, ...]) -> tuple[int, int]:
    """``(offset, whence)`` from seek's arguments, checked as KumoMTA checks them."""
    offset: int | None = None
    whence: str | None = None
    for arg in args:
        if isinstance(arg, str):
            if whence is not None:
                raise ValueError("whence already set")
            if arg not in _WHENCE:
                raise ValueError("invalid whence/offset parameters to seek")
            whence = arg
        elif isinstance(arg, int) and not isinstance(arg, bool):
            if offset is not None:
                raise ValueError("offset already set")
            offset = arg
        else:
            raise ValueError("invalid whence/offset parameters to seek")
    offset = offset or 0
    if whence == "set" and offset < 0:
        raise ValueError(f"start-relative offset {offset} is out of range")
    return offset, _WHENCE[whence or "cur"]


class AsyncFile:
    """An open file of ``kumo.fs.open``; closed by ``close()`` or when collected."""

    lua_methods = True

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd
        self._lock = asyncio.Lock()
        self._finalizer = weakref.finalize(self, os.close, fd)
        #: The thread of a call whose caller was cancelled, while it still runs.
        self._busy: asyncio.Future[Any] | None = None

    def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        # A method, so the running thread keeps the file (and its descriptor) alive.
        return fn(*args)

    async def _settle(self) -> None:
        """Wait for the thread a cancelled call left running (see the module docstring)."""
        busy = self._busy
        if busy is not None:
            await asyncio.wait([busy])
            self._busy = None
            if not busy.cancelled():
                busy.exception()  # its caller is gone: nobody else will look at it

    async def _run(self, verb: str, fn: Callable[..., Any], *args: Any) -> Any:
        async with self._lock:
            await self._settle()
            if self._fd is None:
                # KumoMTA's words: only seek says "seek"; the others all say "flush".
                raise ValueError(f"attempt to {verb} a closed file handle")
            work = asyncio.ensure_future(asyncio.to_thread(self._in_thread, fn, self._fd, *args))
            try:
                return await asyncio.shield(work)
            except asyncio.CancelledError:
                self._busy = work  # still using the descriptor: the next call waits
                raise
            except OSError as exc:
                raise ValueError(_io_error(exc)) from None

    async def read(self, size: Any = None) -> bytes:
        if size is None:
            data: bytes = await self._run("flush", _read_all)
            return data
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"read: OPT_SIZE must be a non-negative integer, got {size!r}")
        data = await self._run("flush", _read_upto, size)
        return data

    @takes_bytes
    async def write(self, buffer: Any) -> None:
        if isinstance(buffer, str):
            buffer = buffer.encode()
        if not isinstance(buffer, bytes):
            raise ValueError(f"write: BUFFER must be a string, got {buffer!r}")
        await self._run("flush", _write_all, buffer)

    async def seek(self, *args: Any) -> int:
        offset, whence = _seek_target(args)
        position: int = await self._run("seek", os.lseek, offset, whence)
        return position

    async def flush(self) -> None:
        await self._run("flush", lambda fd: None)

    async def close(self) -> None:
        async with self._lock:
            if self._fd is None:
                return
            self._fd = None
            busy, self._busy = self._busy, None
            if busy is None:
                self._finalizer()  # closes the descriptor, once
            else:
                # A cancelled call's thread may still use it (it may wait on a pipe for
                # ever): closed when that thread returns (at once if it has), and close
                # does not wait for it.
                busy.add_done_callback(self._close_after)

    def _close_after(self, busy: asyncio.Future[Any]) -> None:
        if not busy.cancelled():
            busy.exception()  # its caller is gone: nobody else will look at it
        self._finalizer()


def _open(filename: str, mode: str) -> int:
    try:
        return os.open(filename, _FLAGS[mode.removesuffix("b")], 0o666)
    except OSError as exc:
        raise ValueError(f"failed to open {filename} with mode {mode}: {_io_error(exc)}") from None


async def open_file(filename: Any, mode: Any = None) -> AsyncFile:
    """A file opened in ``mode`` (default ``r``; also ``w``, ``a``, ``r+``, ``w+``, ``a+``,
    each maybe with ``b``), with ``:read``, ``:write``, ``:seek``, ``:flush``, ``:close``
    that never block the server."""
    if not isinstance(filename, str):
        raise ConfigError(f"kumo.fs.open: FILENAME must be a string, got {filename!r}")
    mode = "r" if mode is None else mode
    if not isinstance(mode, str) or mode.removesuffix("b") not in _FLAGS or mode == "b":
        raise ValueError(f"unsupported file mode `{mode}`")
    opening = asyncio.ensure_future(asyncio.to_thread(_open, filename, mode))
    try:
        return AsyncFile(await asyncio.shield(opening))
    except asyncio.CancelledError:
        opening.add_done_callback(_close_unclaimed)  # its descriptor has no owner
        raise


def _close_unclaimed(opening: asyncio.Future[int]) -> None:
    """Close what a cancelled ``open`` opened after its caller went away."""
    if not opening.cancelled() and opening.exception() is None:
        os.close(opening.result())


def fs_open_functions() -> dict[str, Callable[..., Any]]:
    return {"fs.open": open_file}
