"""``kumocore serve --workers N``: one node on every core; this module is one worker.

The parent process is a supervisor only (:mod:`kumocore.node.supervisor`): it starts N
worker processes (``python -m kumocore.node.workers``: :func:`main` here), restarts one
that dies (a bounded number of times), and on SIGTERM/SIGINT tells every worker to stop
and waits for them. It binds nothing.

Start-up is a barrier: each worker loads the policy and recovers its spool shard, then
builds its listeners short of binding them (TLS contexts, apps), and reports ready over
a socket pair it inherited; only when all N are ready does the supervisor tell them to
bind, and it logs ``kumocore ready`` once each has said it listens. Until then the port
is closed, so the kernel cannot pin early connections to whichever worker happened to
be fastest (and a client retrying a closed port is better served than one stuck behind
a recovering worker). A worker restarted later opens its listeners as soon as it is
ready.

Each worker is an ordinary ``kumocore serve`` with two differences:

* its listeners bind with ``SO_REUSEPORT`` (:attr:`Runtime.reuse_port`), so all workers
  share the configured ESMTP and HTTP addresses and the kernel spreads connections;
* it owns a spool shard: every ``kumo.define_spool`` path gets ``/worker-<k>`` appended.

Before any worker starts, the supervisor moves into the owned shards the mail of every
shard a run with another N left (:mod:`kumocore.spool.shards`), so changing N loses
nothing: it runs this module with ``--migrate`` (:func:`migrate_spools`).

Workers see ``KUMOCORE_WORKER_INDEX`` and ``KUMOCORE_WORKER_COUNT`` in their environment,
so a policy can shard anything else per worker (a local-logs ``log_dir``, for instance).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import sys
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from kumocore.node.runtime import Runtime
    from kumocore.node.server import Server
from kumocore.spool.shards import migrate, shard_path

log = structlog.get_logger("kumocore.node.workers")

#: A worker that exits with this code (a configuration error) is not restarted.
CONFIG_ERROR_EXIT = 2
#: Bytes on the start-up socket pair: worker → supervisor (ready to listen), supervisor
#: → worker (listen now), worker → supervisor (listening).
READY, GO, LISTENING = b"R", b"G", b"L"


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
    from kumocore.node.serve import catch_stop_signals, run_until_stopped
    from kumocore.node.server import Server

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
    # Before LISTENING: the supervisor logs ``kumocore ready`` on it, and a SIGTERM may
    # follow at once. SIGHUP is ignored, as by the supervisor.
    stop = catch_stop_signals(on_sighup=lambda: None)
    if control_fd is not None and not await _open_with_the_others(server, control_fd):
        log.warning("start-up called off by the supervisor; stopping", worker=index)
        await server.stop(shutdown_timeout)
        return 1
    freeze_survivors()
    await run_until_stopped(
        server, shutdown_timeout, stop=stop,
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
