"""Free TCP ports for the servers that tests and benchmarks start.

A port the kernel hands out for ``bind(0)`` comes from its ephemeral range, the same range
every outgoing connection takes its local port from. Between the moment a test asks for a
free port and the moment its server binds it (a kumocore start can take seconds), a
client of another test running in parallel may take that port for a connection, and the
server then fails with "Address already in use". The ports given here lie below that
range, where no outgoing connection goes.

Two :func:`free_port` calls in parallel processes (pytest-xdist workers, another test
session) could still pick the same port before either binds it. So every port handed out
is noted, with the time, in a file shared by every process of this user
(:data:`REGISTRY`), and no :func:`free_port` call anywhere hands it out again for
:data:`RESERVE_SECONDS`; if that file cannot be used, the pick is random and checked by a
bind only, which makes such a meeting rare but possible.

A server that is bound much later, or stopped and started again on its port, should hold
its port meanwhile: :func:`held_port` is a socket bound to it that never listens.
Connecting to it is refused as to a closed port, and no other plain bind (the check of
:func:`free_port`, in any process) succeeds while it lives. With ``shared=True`` it sets
``SO_REUSEADDR`` after its bind, so that a server binding with ``SO_REUSEADDR`` (asyncio's
servers, kumocore's listeners) can still bind and listen on the port alongside it. Such a
server may have bound the port just before it was held (a port picked elsewhere by other
means): a start that fails with "Address already in use" then moves to another held port
(:class:`~bench.common.serve_process.ServeProcess` does).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import random
import socket
import tempfile
import time
from pathlib import Path

__all__ = ["free_port", "held_port", "release_port"]

#: The lowest port handed out (well above the ports of system services).
LOWEST = 10_000
_EPHEMERAL_DEFAULT = (32_768, 60_999)
#: How long a port handed out (or released by :func:`release_port`) is handed to no other
#: :func:`free_port` call, in seconds: longer than a server takes to bind what it picked.
RESERVE_SECONDS = 600.0
#: The ports handed out lately, one ``port expiry`` line each (shared by every process).
REGISTRY = Path("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()) / (
    f"kumocore-free-ports-{os.getuid()}"
)


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range (``net.ipv4.ip_local_port_range``)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as source:
            low, high = (int(field) for field in source.read().split())
    except (OSError, ValueError):
        return _EPHEMERAL_DEFAULT
    return low, high


class _Registry:
    """The shared file of reserved ports, locked (``flock``) while open."""

    def __init__(self) -> None:
        self.reserved: dict[int, float] = {}
        self._fd: int | None = None

    def __enter__(self) -> _Registry:
        try:
            self._fd = os.open(REGISTRY, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            text = os.read(self._fd, 1 << 22).decode("ascii", "replace")
        except OSError:
            self._close()
            return self
        now = time.time()
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                port, expiry = line.split()
                if float(expiry) > now:
                    self.reserved[int(port)] = float(expiry)
        return self

    def reserve(self, port: int) -> None:
        self.reserved[port] = time.time() + RESERVE_SECONDS

    def __exit__(self, *exc: object) -> None:
        if self._fd is None:
            return
        text = "".join(f"{port} {expiry:.3f}\n" for port, expiry in self.reserved.items())
        with contextlib.suppress(OSError):
            os.lseek(self._fd, 0, os.SEEK_SET)
            os.ftruncate(self._fd, 0)
            os.write(self._fd, text.encode("ascii"))
        self._close()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:  # taken, or in TIME_WAIT
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing is bound to now and that no other call (in any
    process) handed out lately, below the ephemeral range (the kernel's choice only if
    that range leaves no room below it, or none is free)."""
    low, _ = ephemeral_range()
    with _Registry() as registry:
        if low - LOWEST >= 1_000:
            for _ in range(100):
                port = random.randrange(LOWEST, low)
                if port not in registry.reserved and _bindable(host, port):
                    registry.reserve(port)
                    return port
        for _ in range(20):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port = int(sock.getsockname()[1])
            if port not in registry.reserved:
                break
        registry.reserve(port)
        return port


def release_port(port: int) -> None:
    """Reserve ``port`` again for :data:`RESERVE_SECONDS` (from now): what a holder of the
    port does as it lets go of it, so that it can take it back for a later start."""
    with _Registry() as registry:
        registry.reserve(port)


def held_port(port: int | None = None, host: str = "127.0.0.1", *,
              shared: bool = False, reclaim: bool = False) -> socket.socket:  # fmt: skip
    """A socket bound to ``port`` on ``host`` (None: a :func:`free_port`), not listening.

    The bind is plain, so it fails if anything holds the port, and while this socket lives
    no other plain bind succeeds. ``shared``: ``SO_REUSEADDR`` is set after the bind, so
    a server that binds with it can listen on the port too. ``reclaim``: ``port`` is one
    this process held and let go (:func:`release_port`), which its server's closed
    connections may still occupy (TIME_WAIT): ``SO_REUSEADDR`` is set before the bind,
    which then fails only if a server listens on the port. Raises OSError if ``port`` is
    taken; a free port is looked for again if another process took it first.
    """
    for _ in range(100):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if reclaim and port is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, free_port(host) if port is None else port))
        except OSError as exc:
            sock.close()
            if port is not None or exc.errno != errno.EADDRINUSE:
                raise
            continue
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        return sock
    raise RuntimeError("no free port could be held")
