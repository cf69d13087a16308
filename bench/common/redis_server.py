"""A real ``redis-server`` for tests: a free loopback port, a temp dir, no persistence.

    with RedisServer() as server:          # skips the test when redis-server is missing
        url = server.url                   # redis://127.0.0.1:<port>/0
        server.kill()                      # SIGKILL: the clients see a dead server
        server.start()                     # back on the same port, empty

Readiness is checked with a raw ``PING`` over a socket so this helper does not depend on
the redis client it is used to test.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import pytest

from bench.common.ports import free_port as free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def require_redis_server() -> str:
    """The redis-server executable, or skip the calling test with the reason."""
    if not Path(REDIS_SERVER).is_file():
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    return REDIS_SERVER


def ping(port: int, timeout: float = 0.5) -> bool:
    """True when a Redis on ``port`` answers ``PING`` with ``+PONG``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, restartable on the same port."""

    def __init__(self, port: int | None = None, *, start_timeout: float = 10.0) -> None:
        self.executable = require_redis_server()
        # A port picked here may be taken before redis binds it; only then may we re-pick.
        self._may_repick = port is None
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="kumocore-redis-")
        self.dir = Path(self._tmp.name)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> RedisServer:
        """Start (or restart) the server and wait until it answers PING."""
        if self.running:
            return self
        attempts = 3 if self._may_repick else 1
        for attempt in range(attempts):
            try:
                self._start_once()
                break
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
                self.port = free_port()
        self._may_repick = False  # restarts must come back on the same port
        return self

    def _start_once(self) -> None:
        log = (self.dir / "redis.log").open("ab")
        # --save '' / --appendonly no: nothing to disk, so a restart comes back empty and
        # fast; --bind keeps it on loopback whatever the machine's redis.conf says.
        self.process = subprocess.Popen(
            [self.executable, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.dir),
             "--protected-mode", "yes", "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while not ping(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"redis-server on port {self.port} did not start:\n{self.log_text()}"
                )
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would: no clean shutdown, connections reset."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        """Terminate the server and wait for it to exit."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    def log_text(self) -> str:
        with contextlib.suppress(OSError):
            return (self.dir / "redis.log").read_text(errors="replace")[-2000:]
        return ""

    def close(self) -> None:
        # Nothing is persisted, so there is nothing a graceful shutdown would save; SIGTERM
        # costs ~100 ms per server (redis finishes a cron tick first), SIGKILL does not.
        self.kill()
        self._tmp.cleanup()

    def __enter__(self) -> RedisServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
