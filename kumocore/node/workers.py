"""``kumocore serve --workers N``: one node on every core.

The parent process is a supervisor only: it starts N worker processes
(``python -m kumocore.node.workers``), restarts one that dies (a bounded number of times), and
on SIGTERM/SIGINT tells every worker to stop and waits for them. It binds nothing.

Start-up is a barrier: each worker loads the policy and recovers its spool shard, then
builds its listeners short of binding them (TLS contexts, apps), and reports ready over
a socket pair it inherited; only when all N are ready does the supervisor tell them to
bind, and it logs ``kumocore ready`` once each has said it listens. Until then the port
is closed, so the kernel cannot pin early connections to whichever worker happened to
be fastest (and a client retrying a closed port is better served than one stuck behind
a recovering worker). A worker restarted later opens its listeners as soon as it is
ready.

Each worker is an ordinary ``kumocore serve`` with three differences:

* its listeners bind with ``SO_REUSEPORT`` (:attr:`Runtime.reuse_port`), so all workers
  share the configured ESMTP and HTTP addresses and the kernel spreads connections;
* it owns a spool shard: every ``kumo.define_spool`` path gets ``/worker-<k>`` appended.

Before any worker starts, the supervisor moves into the owned shards the mail of every
shard a run with another N left (:mod:`kumocore.spool.shards`), so changing N loses
nothing.

Workers see ``KUMOCORE_WORKER_INDEX`` and ``KUMOCORE_WORKER_COUNT`` in their environment,
so a policy can shard anything else per worker (a local-logs ``log_dir``, for instance).
"""

from __future__ import annotations

import argparse
import asyncio
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
from collections.abc import Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING

import structlog

from kumocore.admin.peers import NODE_DIR_ENV

if TYPE_CHECKING:
    from kumocore.node.runtime import Runtime
    from kumocore.node.server import Server
from kumocore.node.node_dir import make_node_dir
from kumocore.node.worker_env import COUNT_ENV, INDEX_ENV
from kumocore.spool.shards import migrate, shard_path

log = structlog.get_logger("kumocore.node.workers")

#: Restarts allowed per worker within :data:`RESTART_WINDOW` seconds before giving up.
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
#: A worker that exits with this code (a configuration error) is not restarted.
CONFIG_ERROR_EXIT = 2
#: Bytes on the start-up socket pair: worker → supervisor (ready to listen), supervisor
#: → worker (listen now), worker → supervisor (listening).
READY, GO, LISTENING = b"R", b"G", b"L"
#: How long the supervisor waits for every worker to report its listeners open.
LISTEN_ACK_TIMEOUT = 30.0


# --------------------------------------------------------------------------- supervisor


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
    """Run :func:`migrate_spools` in a process of its own, seen by the policy as worker 0
    of ``count`` (policies may read :data:`INDEX_ENV`), so that the supervisor never
    holds a policy runtime or a spool. Its exit status, and whether SIGTERM/SIGINT came
    meanwhile (passed on: the move is crash-safe, the next start finishes it)."""
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


# --------------------------------------------------------------------------- worker


def shard_spools(runtime: Runtime, index: int) -> None:
    """Point every spool the policy defined at worker ``index``'s shard."""
    spools = runtime.config.spools
    for name, definition in list(spools.items()):
        spools[name] = dataclasses.replace(definition, path=shard_path(definition.path, index))


async def migrate_spools(policy: str, count: int) -> int:
    """Load the policy (as ``validate`` does) and move the mail of every spool shard no
    worker of ``count`` owns into owned shards (:mod:`kumocore.spool.shards`); the number
    of messages moved. Runs before any worker starts, so no shard is open elsewhere."""
    from kumocore.node.runtime import Runtime

    runtime = Runtime()
    await runtime.load(policy)
    try:
        return await migrate(runtime.config.spools, runtime.hooks.spool_kinds(), count)
    finally:
        await runtime.hooks.shutdown()


async def _open_with_the_others(server: Server, control_fd: int) -> bool:
    """Say :data:`READY`, wait for :data:`GO`, open the listeners, say :data:`LISTENING`.

    False when the supervisor called start-up off (the channel closed before GO).
    """
    loop = asyncio.get_running_loop()
    with socket.socket(fileno=control_fd) as control:
        control.setblocking(False)
        await loop.sock_sendall(control, READY)
        if await loop.sock_recv(control, 1) != GO:
            return False
        await server.start_listeners()
        with contextlib.suppress(OSError):  # the supervisor may stop waiting
            await loop.sock_sendall(control, LISTENING)
    return True


async def serve_worker(
    policy: str, *, index: int, count: int, shutdown_timeout: float,
    control_fd: int | None = None,
) -> int:
    """One worker: load the policy, shard the spools, serve with ``SO_REUSEPORT``.

    With ``control_fd`` (the start-up socket pair), the listeners open only after the
    supervisor said every worker is ready.
    """
    from kumocore.node.gctune import freeze_survivors, tune_for_server
    from kumocore.node.runtime import Runtime
    from kumocore.node.server import Server, run_until_stopped

    tune_for_server()
    from kumocore.admin.peers import NodePeers

    runtime = Runtime()
    runtime.reuse_port = True
    runtime.node = NodePeers.from_environment(index, count)
    await runtime.load(policy)
    shard_spools(runtime, index)
    server = Server(runtime)
    from kumocore.admin.node_adopt import adopt_node_rules

    peers = runtime.node
    # A restarted worker holds what the node holds before its spooled messages are queued.
    adopt = None if peers is None else partial(adopt_node_rules, peers)
    await server.start(listen=control_fd is None, before_recovery=adopt)
    if runtime.node is not None:
        from kumocore.admin.peer_rules import add_private_routes

        await runtime.node.serve(lambda app: add_private_routes(app, runtime))
    if control_fd is not None and not await _open_with_the_others(server, control_fd):
        log.warning("start-up called off by the supervisor; stopping", worker=index)
        await server.stop(shutdown_timeout)
        return 1
    freeze_survivors()
    await run_until_stopped(
        server, shutdown_timeout, on_sighup=lambda: None,  # ignored, as by the supervisor
        ready=lambda: log.info("kumocore worker ready", worker=index, workers=count,
                               pid=os.getpid()),
        worker=index,
    )  # fmt: skip
    if runtime.node is not None:
        await runtime.node.close()
    return 0


async def _migrated(policy: str, count: int) -> int:
    await migrate_spools(policy, count)
    return 0


def _die_with_parent(parent: int) -> None:
    """Linux: get SIGTERM when the supervisor dies, even by SIGKILL."""
    if sys.platform != "linux":
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def main(argv: Sequence[str] | None = None) -> int:
    from kumocore.errors import ConfigError, HookError, PolicyError
    from kumocore.node.diagnostics import configure_diagnostics
    from kumocore.node.loop import run

    parser = argparse.ArgumentParser(prog="kumocore-worker")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--policy", required=True)
    parser.add_argument("--shutdown-timeout", type=float, default=10.0)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--migrate", action="store_true",
                        help="only move the mail of unowned spool shards, then exit")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--parent", type=int, default=0)
    parser.add_argument("--control-fd", type=int, default=None)
    args = parser.parse_args(argv)
    configure_diagnostics(args.log_level)
    if args.parent:
        _die_with_parent(args.parent)
    try:
        if args.migrate:
            # Ctrl-C ends the move like SIGTERM does, without a traceback: it is crash-safe.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            run(_migrated(args.policy, args.count))
            return 0
        return run(
            serve_worker(
                args.policy,
                index=args.index,
                count=args.count,
                shutdown_timeout=args.shutdown_timeout,
                control_fd=args.control_fd,
            )
        )
    except (ConfigError, PolicyError, HookError) as exc:
        who = "kumocore" if args.migrate else f"kumocore worker {args.index}"
        print(f"{who}: error: {exc}", file=sys.stderr)
        return CONFIG_ERROR_EXIT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
