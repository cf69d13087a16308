"""A real ``kumocore serve --workers N`` node for the multi-worker tests.

The node is a :class:`~bench.common.serve_process.ServeProcess` with a small Python policy steered
by environment variables:

* ``W_DIR`` (spool and log directory), ``W_DNS`` (the test DNS server), ``W_SMTP`` (the
  listener port) and ``W_SINK`` (the port every delivery goes to) are always set;
* ``W_KIND`` is the spool kind (``LocalDisk`` unless given);
* ``W_RETRY`` / ``W_MAX_RETRY`` shorten the queue's retry intervals;
* ``W_LIMIT`` / ``W_RATE`` are the egress path's ``connection_limit`` and
  ``max_message_rate``;
* ``W_FAIL=k`` makes worker k fail in ``kumo_init``; ``W_SLOW=k`` makes it start 2 s late
  and write the time it became ready to ``W_DIR/slow-worker-ready``.

Each received message is stamped ``X-Worker-Pid`` with the PID of the worker that took it.

Ports. The node's ESMTP port (``W_SMTP``, :attr:`WorkerNode.smtp_port`) is one of the
held listener ports of :class:`~bench.common.serve_process.ServeProcess`: held from the
node's construction until it is stopped or killed, taken back at the next start, and moved
to another held port by a start whose bind found it taken (see that module). A destination
that is down until the sink appears is a :class:`DownDestination`: its port is held
(:func:`~bench.common.ports.held_port`) and its sink listens on the held socket itself, so
nothing else can ever bind that port.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import time
import weakref
from pathlib import Path
from typing import Any

from bench.common.dns_server import TestDnsServer
from bench.common.ports import held_port
from bench.common.serve_process import PORT_RETRIES, ServeProcess, listener_port
from bench.common.sink import RecordingSink, _Handler, _SinkSMTP
from bench.common.smtp_client import RawSmtpClient

__all__ = ["PORT_RETRIES", "SHUTDOWN_TIMEOUT", "DownDestination", "WorkerNode", "held_port",
           "mx_dns", "send", "worker_pids"]  # fmt: skip

SHUTDOWN_TIMEOUT = 3.0

POLICY = """
from __future__ import annotations
import os
from typing import Any
from kumocore import hookimpl

ENV = os.environ
_kumo: Any = None

@hookimpl
def kumo_init(kumo: Any) -> None:
    global _kumo
    _kumo = kumo
    var = ENV["W_DIR"]
    kind = ENV.get("W_KIND", "LocalDisk")
    kumo.dns.configure_resolver(name_servers=[ENV["W_DNS"]])
    kumo.define_spool(name="data", path=f"{var}/spool/data", kind=kind)
    kumo.define_spool(name="meta", path=f"{var}/spool/meta", kind=kind)
    kumo.start_esmtp_listener(listen=f"127.0.0.1:{ENV['W_SMTP']}", relay_hosts=["127.0.0.1"])
    index = ENV.get("KUMOCORE_WORKER_INDEX")  # unset with one worker
    if index is not None and ENV.get("W_FAIL") == index:
        raise ValueError("this worker cannot start")
    if index is not None and ENV.get("W_SLOW") == index:
        import time
        time.sleep(2.0)
        with open(f"{var}/slow-worker-ready", "w") as fh:
            fh.write(repr(time.time()))

@hookimpl
def kumo_smtp_server_message_received(message: Any, conn_meta: Any) -> None:
    message.prepend_header("X-Worker-Pid", str(os.getpid()))

@hookimpl
def kumo_get_queue_config(domain: str, tenant: Any, campaign: Any, routing_domain: Any) -> Any:
    if "W_RETRY" not in ENV:
        return _kumo.make_queue_config()
    return _kumo.make_queue_config(
        retry_interval=ENV["W_RETRY"], max_retry_interval=ENV["W_MAX_RETRY"])

@hookimpl
def kumo_get_egress_path_config(domain: str, egress_source: str, site_name: str) -> Any:
    return _kumo.make_egress_path(
        smtp_port=int(ENV["W_SINK"]), prohibited_hosts=[], enable_tls="Disabled",
        connection_limit=int(ENV.get("W_LIMIT", "32")), max_message_rate=ENV.get("W_RATE"))
"""


class DownDestination:
    """A destination on 127.0.0.1 that is down (connections refused) until :meth:`sink`
    opens a recording sink on it. The port is held meanwhile (:func:`held_port`) and the
    sink listens on that very socket, so it cannot be taken in between."""

    def __init__(self) -> None:
        self._socket: socket.socket | None = held_port()
        self.port: int = self._socket.getsockname()[1]
        self._close = weakref.finalize(self, self._socket.close)

    def sink(self) -> RecordingSink:
        """The sink to start (``async with destination.sink() as sink``); once only. It
        takes the socket: stopping the sink frees the port."""
        assert self._socket is not None, "the destination's sink was opened already"
        sink, self._socket = _HeldSink(self._socket), None
        self._close.detach()
        return sink

    def close(self) -> None:
        """Free the port if no sink took it."""
        self._close()


class _HeldSink(RecordingSink):
    """A :class:`RecordingSink` that listens on a socket bound already."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(port=sock.getsockname()[1])
        self._socket = sock

    async def start(self) -> RecordingSink:
        handler = _Handler(self.state)
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _SinkSMTP(handler, hostname="sink.test", enable_SMTPUTF8=True,
                              decode_data=False, tls_context=self.tls_context),
            sock=self._socket)  # fmt: skip
        return self


class WorkerNode(ServeProcess):
    """One spool directory (``root``) served by ``kumocore serve``, a worker count per start.

    Every start appends ``--- start with N workers`` to the log. The ESMTP port
    (:attr:`smtp_port`) is held while the node is not stopped (see the module's doc), and
    may change at a start.
    """

    def __init__(self, root: Path, dns: str, sink_port: int, **extra_env: str) -> None:
        self.root = root
        policy = root / "policy.py"
        policy.write_text(POLICY)
        env = {"W_DIR": str(root), "W_DNS": dns, "W_SINK": str(sink_port), **extra_env}
        super().__init__(policy, root / "kumocore.log", env, workers=2,
                         shutdown_timeout=SHUTDOWN_TIMEOUT, listen_ports=["W_SMTP"])  # fmt: skip

    smtp_port = listener_port("W_SMTP")  # held (bench.common.serve_process)

    def start(self, workers: int = 2, **env: str) -> subprocess.Popen[bytes]:
        self.workers = workers
        with self.log.open("ab") as log:
            log.write(f"--- start with {workers} workers\n".encode())
        return super().start(**env)

    def text(self) -> str:
        return self.log_text()

    async def ready(self, timeout: float = 60.0) -> None:
        """Until the latest start logged ``kumocore ready`` (started again on another
        port if its port was taken)."""
        deadline = time.monotonic() + timeout
        while "kumocore ready" not in self.latest_start_log():
            self._check_alive()
            assert time.monotonic() < deadline, self.text()
            await asyncio.sleep(0.1)

    async def terminate(self) -> None:
        """SIGTERM to the supervisor only; it must stop its workers and exit 0. The ESMTP
        port stays held (the node is to start again)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(self.process.wait, 30) == 0, self.text()


def mx_dns(domain: str) -> TestDnsServer:
    """A test DNS server (not started) where ``domain``'s MX is 127.0.0.1."""
    zones: dict[str, dict[str, Any]] = {
        domain: {"MX": [(10, f"mx.{domain}")]},
        f"mx.{domain}": {"A": ["127.0.0.1"]},
    }
    return TestDnsServer(zones)


async def send(port: int, domain: str, connection: int, count: int) -> None:
    """``count`` messages over one connection, each to its own recipient at ``domain`` and
    with the subject ``c<connection>m<n>``; every one must get 250."""
    client = await RawSmtpClient.connect(port)
    try:
        await client.hello()
        for n in range(count):
            recipient = f"c{connection}m{n}@{domain}"
            body = f"To: <{recipient}>\r\nSubject: c{connection}m{n}\r\n\r\nhello\r\n"
            _, final = await client.send_mail("s@src.test", [recipient], body)
            assert final.code == 250, str(final)
        await client.command("QUIT")
    finally:
        await client.close()


def worker_pids(sink: RecordingSink) -> set[int]:
    """The workers (``X-Worker-Pid``) that received the messages the sink got."""
    pids = set()
    for message in sink.messages:
        for line in message.data.splitlines():
            if line.lower().startswith(b"x-worker-pid:"):
                pids.add(int(line.split(b":", 1)[1]))
    return pids
