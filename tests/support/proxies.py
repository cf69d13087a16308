"""Real proxy servers for tests: HAProxy (Debian ``haproxy``) and Dante (``dante-server``).

Each is started in the foreground from a config written to a temp dir, bound to a
loopback address, and stopped (by its own pid) when the context ends. A test that needs
one is skipped only when the binary is not installed (``scripts/setup.sh`` installs
both).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.common.ports import free_port as free_port

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
DANTED = shutil.which("danted") or "/usr/sbin/danted"


def wait_listening(host: str, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"proxy exited: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"proxy did not listen on {host}:{port}")


@contextlib.contextmanager
def run_proxy(argv: list[str], config: str, host: str, port: int) -> Iterator[int]:
    with tempfile.TemporaryDirectory(prefix="kumocore-proxy-") as tmp:
        conf = Path(tmp) / "proxy.conf"
        conf.write_text(config)
        log = Path(tmp) / "proxy.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*argv, "-f", str(conf)],
                stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_listening(host, port, process, log)
            yield port
        finally:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@contextlib.contextmanager
def haproxy_forward_proxy(host: str) -> Iterator[int]:
    """HAProxy as an egress proxy (KumoMTA's proxy.md set-up): it takes a PROXY v2
    header and connects from the header's source to its destination."""
    port = free_port(host)
    config = f"""
global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
listen outboundsmtp
    bind {host}:{port} accept-proxy
    server v4 0.0.0.0 source 0.0.0.0 usesrc clientip
"""
    with run_proxy([HAPROXY, "-db"], config, host, port) as bound:
        yield bound


@contextlib.contextmanager
def haproxy_in_front_of(
    host: str, backend: tuple[str, int], *, source: str, version: int
) -> Iterator[int]:
    """HAProxy as an inbound load balancer: clients connect to ``host``; it connects to
    ``backend`` from ``source`` and sends a PROXY header of ``version`` (1 or 2)."""
    port = free_port(host)
    send = "send-proxy-v2" if version == 2 else "send-proxy"
    config = f"""
global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
listen inboundsmtp
    bind {host}:{port}
    server kumo {backend[0]}:{backend[1]} source {source} {send}
"""
    with run_proxy([HAPROXY, "-db"], config, host, port) as bound:
        yield bound


@contextlib.contextmanager
def dante_socks5(
    host: str, external: str, *, username: str | None = None, port: int | None = None
) -> Iterator[int]:
    """Dante's SOCKS5 server on ``host`` (``port``, else a free one), connecting out from
    ``external``. With ``username``, clients must authenticate with a user name and
    password, which Dante checks against the system's accounts (the test creates one)."""
    port = port or free_port(host)
    method = "username" if username else "none"
    config = f"""
logoutput: stderr
internal: {host} port = {port}
external: {external}
clientmethod: none
socksmethod: {method}
user.privileged: root
user.unprivileged: nobody
client pass {{
    from: 127.0.0.0/8 to: 0.0.0.0/0
}}
socks pass {{
    from: 127.0.0.0/8 to: 0.0.0.0/0
    protocol: tcp
    command: connect
}}
"""
    with run_proxy([DANTED], config, host, port) as bound:
        yield bound
