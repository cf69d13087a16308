"""A real one-worker ``kumocore serve`` for the tests that measure what heavy HTTP work
costs the node's other clients: its memory is its own, and another client's latency is
measured across a socket. Its Python policy sends generated messages to the null queue
and counts them in a file (every 10,000), so a test knows when generation ends.

The ``worker`` fixture (``tests/http/conftest.py``) starts one per test.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.common.serve_process import ServeProcess, listener_port
from bench.common.smtp_client import RawSmtpClient

__all__ = ["POLICY", "Worker", "ehlo_seconds"]

#: Counts the generated messages in a file (every 10,000), so the test knows when it ends.
POLICY = """
import os
from typing import Any
from kumocore import hookimpl

ENV = os.environ
_kumo: Any = None
_count = 0

@hookimpl
def kumo_init(kumo: Any) -> None:
    global _kumo
    _kumo = kumo
    var = ENV["W_DIR"]
    kumo.define_spool(name="data", path=f"{var}/spool/data", kind="RocksDB")
    kumo.define_spool(name="meta", path=f"{var}/spool/meta", kind="RocksDB")
    kumo.start_esmtp_listener(listen=f"127.0.0.1:{ENV['W_SMTP']}", relay_hosts=["127.0.0.1"])
    kumo.start_http_listener(listen=f"127.0.0.1:{ENV['W_HTTP']}", trusted_hosts=["127.0.0.1"])

@hookimpl
def kumo_http_message_generated(message: Any, auth_info: Any) -> None:
    global _count
    message.set_meta("queue", "null")
    _count += 1
    if _count % 10000 == 0:
        with open(ENV["W_DIR"] + "/generated", "w") as fh:
            fh.write(str(_count))

@hookimpl
def kumo_get_egress_path_config(domain: str, egress_source: str, site_name: str) -> Any:
    if domain == "generator.kumomta.internal":
        return _kumo.make_egress_path(connection_limit=32)  # KumoMTA's default, explicit
    return None
"""


class Worker(ServeProcess):
    """A one-worker ``kumocore serve`` (the supervisor is the worker) on held ports
    (:attr:`smtp`, :attr:`http`: they may change at a start whose port was taken)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "policy.py").write_text(POLICY)
        super().__init__(root / "policy.py", root / "kumocore.log", {"W_DIR": str(root)},
                         listen_ports=["W_SMTP", "W_HTTP"])  # fmt: skip

    smtp = listener_port("W_SMTP")  # held (bench.common.serve_process)
    http = listener_port("W_HTTP")

    def rss_mib(self) -> tuple[int, int]:
        """Its resident memory now and at its highest, in MiB."""
        status = Path(f"/proc/{self.pid}/status").read_text().splitlines()
        fields = dict(line.split(":", 1) for line in status)
        return int(fields["VmRSS"].split()[0]) // 1024, int(fields["VmHWM"].split()[0]) // 1024

    def generated(self) -> int:
        path = self.root / "generated"
        text = path.read_text() if path.exists() else ""
        return int(text) if text else 0


async def ehlo_seconds(port: int) -> float:
    """How long another client waits for its EHLO's answer on a fresh connection."""
    client = await RawSmtpClient.connect(port, timeout=30)
    try:
        started = time.monotonic()
        assert (await client.read_reply()).code == 220
        assert (await client.command("EHLO other.example")).code == 250
        return time.monotonic() - started
    finally:
        await client.close()
