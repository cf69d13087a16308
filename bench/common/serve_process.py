"""A real ``kumocore serve`` process for the tests and benches that need the whole
program: signals, kill -9, several nodes, several workers.

:class:`ServeProcess` runs this virtualenv's ``kumocore`` script in its own session, so a
stop or a kill -9 reaches the supervisor and every worker at once, with its output appended
to a log file the test reads back (and shows when something goes wrong).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from bench.common.ports import free_port as free_port
from bench.common.smtp_client import RawSmtpClient

KUMOCORE = Path(sys.executable).with_name("kumocore")
#: The example plugins ``scripts/setup.sh`` installs for their own tests stay out.
BLOCKED_PLUGINS = "hello,webhook_sink"


class ServeProcess:
    """``kumocore serve --policy policy`` with ``env`` added to this process's environment.

    ``workers`` and ``shutdown_timeout`` (None: kumocore's default) are its flags.
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
    ) -> None:
        self.policy, self.log, self.name = policy, log, name
        self.env = {**os.environ, "KUMOCORE_BLOCK_PLUGINS": BLOCKED_PLUGINS, **(env or {})}
        self.workers = workers
        self.shutdown_timeout = shutdown_timeout
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        serve = ["serve", "--policy", str(self.policy), "--workers", str(self.workers)]
        if self.shutdown_timeout is not None:
            serve += ["--shutdown-timeout", str(self.shutdown_timeout)]
        return [str(KUMOCORE), "--log-level", "info", *serve]

    def start(self, **env: str) -> subprocess.Popen[bytes]:
        """Start it (``env``: for this start only); returns the supervisor's process."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env={**self.env, **env}, start_new_session=True,
            )  # fmt: skip
        return self.process

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

    async def wait_for_smtp(self, port: int, timeout: float = 30.0) -> None:
        """Until the listener on ``port`` greets with 220."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                client = await RawSmtpClient.connect(port, timeout=1.0)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            greeting = await client.read_reply()
            await client.close()
            assert greeting.code == 220, str(greeting)
            return
        raise AssertionError(f"{self.name} did not listen in {timeout}s:\n{self.log_text(3000)}")

    def kill9(self) -> None:
        """SIGKILL to the whole session: what a crash looks like to the spool."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the session; SIGKILL if it is not gone in ``timeout`` seconds."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
