"""A real ``kumocore serve`` process for the tests and benches that need the whole
program: signals, kill -9, several nodes, several workers.

:class:`ServeProcess` runs this virtualenv's ``kumocore`` script in its own session, so a
stop or a kill -9 reaches the supervisor and every worker at once, with its output appended
to a log file the test reads back (and shows when something goes wrong).

Ports. A port picked free and bound seconds later (a start takes that long; a test stops
and starts its node again) could be taken meanwhile by a parallel test. So the ports a
:class:`ServeProcess` gives its listeners (``listen_ports``: the environment variables the
policy reads them from) are held (:func:`~bench.common.ports.held_port`, ``shared``) from
its construction until it is stopped or killed; a later start holds them again (the same
ports if they are still free). Should another process have bound one just before it was
held, the start fails with ``... listener 127.0.0.1:PORT: cannot bind: Address already
in use``: the waits (:meth:`~ServeProcess.wait_for_log`,
:meth:`~ServeProcess.wait_for_smtp`, :meth:`~ServeProcess.wait_until_ready`) then start
it again, with that listener on another held port (up to :data:`PORT_RETRIES` times).
Read the ports from :attr:`ServeProcess.ports` (they may change at a start), not from a
copy taken before.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Self

from bench.common.ports import free_port as free_port
from bench.common.ports import held_port as held_port
from bench.common.ports import release_port
from bench.common.smtp_client import RawSmtpClient

KUMOCORE = Path(sys.executable).with_name("kumocore")
#: The example plugins ``scripts/setup.sh`` installs for their own tests stay out.
BLOCKED_PLUGINS = "hello,webhook_sink"
#: Starts again with a listener on another port after its port turned out taken.
PORT_RETRIES = 5
_TAKEN = re.compile(
    r"listener 127\.0\.0\.1:(\d+): cannot bind: " + re.escape(os.strerror(errno.EADDRINUSE))
)


def _close_all(held: dict[str, socket.socket]) -> None:
    for sock in held.values():
        port = sock.getsockname()[1]
        sock.close()
        release_port(port)
    held.clear()


def listener_port(key: str) -> property:
    """A read-only property: the port now held for the listener of ``key`` (one of the
    ``listen_ports``). Read it each time: a start that found its port taken moved it."""
    return property(lambda self: self.ports[key], doc=f"The port of ${key}.")


class ServeProcess:
    """``kumocore serve --policy policy`` with ``env`` added to this process's environment.

    ``workers`` and ``shutdown_timeout`` (None: kumocore's default) are its flags.
    ``listen_ports``: environment variables that each get a held port on 127.0.0.1 for a
    listener of the policy (see the module's doc); :attr:`ports` maps them to their ports.
    """

    def __init__(
        self,
        policy: Path,
        log: Path,
        env: Mapping[str, str] | None = None,
        *,
        workers: int = 1,
        shutdown_timeout: float | None = None,
        name: str = "kumocore",
        listen_ports: Iterable[str] = (),
    ) -> None:
        self.policy, self.log, self.name = policy, log, name
        self.env = {**os.environ, "KUMOCORE_BLOCK_PLUGINS": BLOCKED_PLUGINS, **(env or {})}
        self.workers = workers
        self.shutdown_timeout = shutdown_timeout
        self.process: subprocess.Popen[bytes] | None = None
        #: The listeners' ports, by environment variable.
        self.ports: dict[str, int] = {}
        self._held: dict[str, socket.socket] = {}
        self._release = weakref.finalize(self, _close_all, self._held)
        self._start_env: dict[str, str] = {}
        self._start_offset = 0
        self._port_retries = 0
        for key in listen_ports:
            self._hold(key)

    def _hold(self, key: str, port: int | None = None) -> int:
        """Hold ``port`` (None: a free one; else its own port of before) for the listener
        of ``key``; its port."""
        sock = held_port(port, shared=True, reclaim=True)
        old = self._held.pop(key, None)
        if old is not None:
            old.close()
        self._held[key] = sock
        self.ports[key] = int(sock.getsockname()[1])
        self.env[key] = str(self.ports[key])
        return self.ports[key]

    def _hold_ports(self) -> None:
        """Hold the listeners' ports again (after a stop): the same ones if still free."""
        for key, port in list(self.ports.items()):
            if key not in self._held:
                try:
                    self._hold(key, port)
                except OSError:
                    self._hold(key)

    def release_ports(self) -> None:
        """Let go of the listeners' ports (a later :meth:`start` holds them again)."""
        _close_all(self._held)

    def command(self) -> list[str]:
        serve = ["serve", "--policy", str(self.policy), "--workers", str(self.workers)]
        if self.shutdown_timeout is not None:
            serve += ["--shutdown-timeout", str(self.shutdown_timeout)]
        return [str(KUMOCORE), "--log-level", "info", *serve]

    def start(self, **env: str) -> subprocess.Popen[bytes]:
        """Start it (``env``: for this start only); returns the supervisor's process."""
        self._hold_ports()
        self._start_env = env
        return self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as log:
            self._start_offset = log.tell()
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env={**self.env, **self._start_env},
                start_new_session=True,
            )  # fmt: skip
        return self.process

    def latest_start_log(self) -> str:
        """The log written since the latest start."""
        with contextlib.suppress(OSError), self.log.open("rb") as log:
            log.seek(self._start_offset)
            return log.read().decode(errors="replace")
        return ""

    def restart_if_port_taken(self) -> bool:
        """If the latest start exited because a listener's port (one of :attr:`ports`) was
        taken, start again (same environment) with that listener on another held port.
        True if it did."""
        process = self.process
        if process is None or process.poll() is None:
            return False
        taken = {int(port) for port in _TAKEN.findall(self.latest_start_log())}
        keys = [key for key, port in self.ports.items() if port in taken]
        if not keys:
            return False
        self._port_retries += 1
        assert self._port_retries <= PORT_RETRIES, self.log_text(3000)
        for key in keys:
            self._hold(key)
        self._spawn()
        return True

    @property
    def pid(self) -> int:
        """The supervisor's process id (the session's leader)."""
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def log_text(self, tail: int | None = None) -> str:
        """The log (its last ``tail`` characters), or "" before there is one."""
        with contextlib.suppress(OSError):
            text = self.log.read_text(errors="replace")
            return text if tail is None else text[-tail:]
        return ""

    def _check_alive(self) -> None:
        assert self.process is not None, f"{self.name} was never started"
        self.restart_if_port_taken()
        if self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited early:\n{self.log_text(3000)}")

    async def wait_for_log(self, needle: str, count: int = 1, timeout: float = 30.0) -> None:
        """Until ``needle`` stands ``count`` times in the log; it must stay alive meanwhile."""
        deadline = time.monotonic() + timeout
        while self.log_text().count(needle) < count:
            self._check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no {count}x {needle!r} in {timeout}s:\n"
                                     f"{self.log_text(3000)}")  # fmt: skip
            await asyncio.sleep(0.1)

    def wait_until_ready(self, timeout: float = 60.0) -> Self:
        """Until the latest start logged ``kumocore ready`` (blocking, for callers that are
        not async); it must stay alive meanwhile. Returns itself."""
        deadline = time.monotonic() + timeout
        while "kumocore ready" not in self.latest_start_log():
            self._check_alive()
            assert time.monotonic() < deadline, self.log_text(3000)
            time.sleep(0.1)
        return self

    async def wait_for_smtp(self, port: int | str, timeout: float = 30.0) -> None:
        """Until the listener on ``port`` (or on the port of ``ports[port]``, which follows
        a restart on another port) greets with 220."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                number = self.ports[port] if isinstance(port, str) else port
                client = await RawSmtpClient.connect(number, timeout=1.0)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            greeting = await client.read_reply()
            await client.close()
            assert greeting.code == 220, str(greeting)
            return
        raise AssertionError(f"{self.name} did not listen in {timeout}s:\n{self.log_text(3000)}")

    def kill9(self) -> None:
        """SIGKILL to the whole session: what a crash looks like to the spool. The
        listeners' ports are let go (a later start holds them again)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.release_ports()

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the session; SIGKILL if it is not gone in ``timeout`` seconds. The
        listeners' ports are let go (a later start holds them again)."""
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        self.release_ports()
