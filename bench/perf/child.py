"""The child process a benchmark peer owns: started with its output in a log file, stopped
for sure (also at exit), and read back when it fails.

Haraka, OpenDKIM and ``kumocore serve`` (:mod:`bench.perf.haraka`, :mod:`bench.perf.opendkim`,
:mod:`bench.perf.kumocore_side`) each run as one such child; Postfix daemonizes itself, so
:mod:`bench.perf.postfix` only shares :func:`tail` for its ``maillog``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.perf.load import LoadError


def tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a log file, or a note saying it is missing."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path.name})"


class ChildProcess:
    """One child process whose stdout and stderr are appended to ``log_path``.

    ``stop_timeout`` is how long a SIGTERM gets before SIGKILL. With ``process_group`` the
    child leads its own session, and :meth:`stop` SIGKILLs the whole group afterwards: a
    master's workers (Haraka's cluster) must not outlive it.
    """

    def __init__(
        self, name: str, log_path: Path, *, stop_timeout: float, process_group: bool = False
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.stop_timeout = stop_timeout
        self.process_group = process_group
        self.proc: subprocess.Popen[bytes] | None = None

    def launch(self, argv: Sequence[str], ready: Callable[[], None], **popen: Any) -> None:
        """Start ``argv`` and wait with ``ready`` (which raises :class:`LoadError` when it
        gives up); a child that never gets ready is stopped and its log tail reported."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps its own copy
        atexit.register(self.stop)  # a crashed benchmark must not leave it running
        try:
            self.proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=self.process_group,
                **popen,
            )
        finally:
            log.close()
        try:
            ready()
        except LoadError as exc:
            self.stop()
            raise LoadError(f"{self.name} did not start: {exc}\n{self.log_tail()}") from None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> int | None:
        """SIGTERM, SIGKILL after ``stop_timeout``; idempotent. Returns the exit status."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(self.stop_timeout)
        if self.process_group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        elif proc.poll() is None:
            proc.kill()
        return proc.wait()

    def kill(self) -> None:
        """SIGKILL at once: what a crash looks like."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.stop()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 15) -> str:
        return tail(self.log_path, lines)
