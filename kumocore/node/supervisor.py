"""The parent process of ``kumocore serve --workers N``: it supervises, nothing more.

It starts N worker processes (``python -m kumocore.node.workers``, see
:mod:`kumocore.node.workers`), restarts one that dies (a bounded number of times), and on
SIGTERM/SIGINT tells every worker to stop and waits for them. It binds nothing.

Start-up is a barrier, held here: every worker reports :data:`READY` over the socket
pair it inherited, only then does the supervisor send each :data:`GO`, and it logs
``kumocore ready`` once each has answered :data:`LISTENING` (the worker's side is
:func:`kumocore.node.workers.serve_worker`). Before any worker starts, the mail of every
spool shard a run with another N left is moved into the owned shards, in a process of its
own (:func:`_migrate_in_child`), so that the supervisor never holds a policy runtime or a
spool.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import structlog

from kumocore.admin.peers import NODE_DIR_ENV
from kumocore.node.node_dir import make_node_dir
from kumocore.node.worker_env import COUNT_ENV, INDEX_ENV
from kumocore.node.workers import CONFIG_ERROR_EXIT, GO, LISTENING, READY

log = structlog.get_logger("kumocore.node.supervisor")

#: Restarts allowed per worker within :data:`RESTART_WINDOW` seconds before giving up.
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
#: How long the supervisor waits for every worker to report its listeners open.
LISTEN_ACK_TIMEOUT = 30.0


@dataclasses.dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes]
    restarts: list[float] = dataclasses.field(default_factory=list)
    #: The supervisor's end of the start-up socket pair (None once the node is up).
    control: socket.socket | None = None


class Supervisor:
    """Starts, watches and stops the worker processes of one node."""

    def __init__(
        self, policy: str, *, workers: int, shutdown_timeout: float, log_level: str
    ) -> None:
        self.policy = policy
        self.count = workers
        self.shutdown_timeout = shutdown_timeout
        self.log_level = log_level
        self.workers: list[_Worker] = []
        self.stopping = False
        # The workers' private admin sockets (kumocore.admin.peers): readable by this user only.
        self.node_dir = make_node_dir()

    def _spawn(self, index: int, control: socket.socket | None = None) -> subprocess.Popen[bytes]:
        """Start worker ``index``; with ``control``, it waits for :data:`GO` to listen."""
        command = [
            sys.executable, "-m", "kumocore.node.workers", "--log-level", self.log_level,
            "--policy", self.policy, "--shutdown-timeout", str(self.shutdown_timeout),
            "--index", str(index), "--count", str(self.count), "--parent", str(os.getpid()),
        ]  # fmt: skip
        fds: tuple[int, ...] = ()
        if control is not None:
            command += ["--control-fd", str(control.fileno())]
            fds = (control.fileno(),)
        env = {**os.environ, INDEX_ENV: str(index), COUNT_ENV: str(self.count),
               NODE_DIR_ENV: self.node_dir}  # fmt: skip
        # Same process group as the parent: a signal to the group reaches every worker.
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, pass_fds=fds)
        log.info("worker started", worker=index, pid=process.pid)
        return process

    def _start_with_barrier(self, index: int) -> _Worker:
        ours, theirs = socket.socketpair()
        try:
            process = self._spawn(index, theirs)
        finally:
            theirs.close()  # the child has its own copy
        return _Worker(index, process, control=ours)

    def _answers(self, timeout: float | None = None) -> Iterator[tuple[_Worker, bytes]]:
        """Each worker's next byte on the start-up channel, as they arrive (``b""`` when
        its end closed: the worker is gone); stops early on SIGTERM or after ``timeout``."""
        pending = {w.control.fileno(): w for w in self.workers if w.control is not None}
        deadline = None if timeout is None else time.monotonic() + timeout
        while pending and not self.stopping and (deadline is None or time.monotonic() < deadline):
            readable, _, _ = select.select(list(pending), [], [], 0.2)
            for fd in readable:
                worker = pending.pop(fd)
                assert worker.control is not None
                try:
                    answer = worker.control.recv(1)
                except OSError:
                    answer = b""
                yield worker, answer

    def _wait_until_ready(self) -> int:
        """Wait for every worker's :data:`READY`; nonzero if one exits first."""
        for worker, answer in self._answers():
            if answer != READY:
                status = worker.process.wait()
                log.error("worker exited during start-up", worker=worker.index, status=status)
                return CONFIG_ERROR_EXIT if status == CONFIG_ERROR_EXIT else 1
        return 0

    def _release(self, *, go: bool) -> int:
        """End the start-up channel: with ``go``, every worker opens its listeners and
        this returns once all say they listen; without, each sees the channel closed and
        stops (start-up failed, or SIGTERM came first).

        Nonzero when a worker could not open its listeners (a port taken, an address not on
        the host): the node must stop before it says it is ready, with that worker's exit
        status, rather than restart a worker that can only fail the same way again.
        """
        code = 0
        if go:
            for worker in self.workers:
                if worker.control is not None:
                    with contextlib.suppress(OSError):  # noticed below as a missing answer
                        worker.control.sendall(GO)
            listening = 0
            for worker, answer in self._answers(LISTEN_ACK_TIMEOUT):
                if answer == LISTENING:
                    listening += 1
                    continue
                status = _exit_status(worker.process)
                log.error("worker failed to open its listeners", worker=worker.index,
                          status=status)  # fmt: skip
                code = code or (CONFIG_ERROR_EXIT if status == CONFIG_ERROR_EXIT else 1)
            if not code and listening < self.count and not self.stopping:
                log.error("workers did not open their listeners in time",
                          listening=listening, workers=self.count)  # fmt: skip
                code = 1
        for worker in self.workers:
            if worker.control is not None:
                worker.control.close()
                worker.control = None
        return code

    def _stop(self, signum: int, _frame: object) -> None:
        self.stopping = True

    def run(self) -> int:
        """Run until SIGTERM/SIGINT (0) or a worker cannot be kept running (nonzero)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        from kumocore.throttle.node import NodeThrottleServer, socket_path

        throttles = NodeThrottleServer(socket_path(self.node_dir))
        throttles.start()
        self.workers = [self._start_with_barrier(k) for k in range(self.count)]
        code = self._wait_until_ready()
        code = self._release(go=code == 0 and not self.stopping) or code
        if code == 0 and not self.stopping:
            log.info(f"kumocore ready: {self.count} workers", workers=self.count,
                     policy=self.policy)  # fmt: skip
        while not self.stopping and code == 0:
            time.sleep(0.2)
            for worker in self.workers:
                code = code or self._check(worker)
        log.info("stopping workers", timeout=self.shutdown_timeout)
        self._terminate_all()
        throttles.stop()
        shutil.rmtree(self.node_dir, ignore_errors=True)
        log.info("kumocore stopped", status=code)
        return code

    def _check(self, worker: _Worker) -> int:
        """Restart ``worker`` if it died; nonzero when the node must stop instead."""
        status = worker.process.poll()
        if status is None or self.stopping:
            return 0
        log.error("worker exited", worker=worker.index, pid=worker.process.pid, status=status)
        if status == CONFIG_ERROR_EXIT:
            return CONFIG_ERROR_EXIT
        now = time.monotonic()
        worker.restarts = [t for t in worker.restarts if now - t < RESTART_WINDOW]
        if len(worker.restarts) >= MAX_RESTARTS:
            log.error(
                "worker keeps dying; stopping the node",
                worker=worker.index,
                restarts=len(worker.restarts),
                window=RESTART_WINDOW,
            )
            return 1
        worker.restarts.append(now)
        worker.process = self._spawn(worker.index)
        return 0

    def _terminate_all(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.shutdown_timeout + 5.0
        for worker in self.workers:
            try:
                worker.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.error("worker did not stop in time; killing it", worker=worker.index)
                worker.process.kill()
                worker.process.wait()


def _exit_status(process: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """The exit status of a worker that is on its way out (killed if it lingers)."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def supervise(policy: str, *, workers: int, shutdown_timeout: float, log_level: str) -> int:
    """``kumocore serve --workers N`` with N > 1."""
    if workers < 2:
        raise ValueError("supervise() needs at least two workers")
    code, stopped = _migrate_in_child(policy, workers, log_level)
    if stopped:
        log.info("kumocore stopped during the spool migration; the next start finishes it")
        return 0
    if code < 0:  # killed by a signal
        code = 1
    if code:
        log.error("spool migration failed; not starting the workers", status=code)
        return code
    supervisor = Supervisor(
        policy, workers=workers, shutdown_timeout=shutdown_timeout, log_level=log_level
    )
    return supervisor.run()


def _migrate_in_child(policy: str, count: int, log_level: str) -> tuple[int, bool]:
    """Run :func:`~kumocore.node.workers.migrate_spools` in a process of its own, seen
    by the policy as worker 0 of ``count`` (policies may read :data:`INDEX_ENV`), so that
    the supervisor never holds a policy runtime or a spool. Its exit status, and whether
    SIGTERM/SIGINT came meanwhile (passed on: the move is crash-safe, the next start
    finishes it)."""
    command = [sys.executable, "-m", "kumocore.node.workers", "--migrate", "--log-level", log_level,
               "--policy", policy, "--index", "0", "--count", str(count)]  # fmt: skip
    env = {**os.environ, INDEX_ENV: "0", COUNT_ENV: str(count)}
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
    stopped: list[int] = []

    def pass_on(signum: int, _frame: object) -> None:
        stopped.append(signum)
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, pass_on) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return process.wait(), bool(stopped)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
