"""A real ``kumocore serve`` delivering to recording sinks, for the status page tests.

Two sinks share one port on two loopback addresses, so the two destination domains are
two sites: ``ok.test`` (MX 127.0.0.2) accepts, ``defer.test`` (MX 127.0.0.3) is where
the tests send ``tempfail`` recipients (451). ``slow.test`` shares ok.test's site but
retries only after an hour (for "retry now"). The sinks run on their own event loop in a
thread, because the browser driver (selenium) blocks the test's thread.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import smtplib
import tempfile
import threading
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common.dns_server import TestDnsServer
from bench.common.serve_process import ServeProcess, free_port, listener_port
from bench.common.sink import RecordingSink

SITES = {"ok.test": "127.0.0.2", "defer.test": "127.0.0.3"}

POLICY = '''
import os
from kumocore import hookimpl
from kumocore.config import EgressPathConfig, QueueConfig

@hookimpl
def kumo_init(kumo):
    kumo.dns.configure_resolver(name_servers=[{dns!r}])
    kumo.define_spool(name="data", path={spool!r} + "/data", kind="LocalDisk")
    kumo.define_spool(name="meta", path={spool!r} + "/meta", kind="LocalDisk")
    kumo.start_esmtp_listener(listen="127.0.0.1:" + os.environ["S_SMTP"],
                              hostname="status.test", relay_hosts=["127.0.0.1"])
    kumo.start_http_listener(listen="127.0.0.1:" + os.environ["S_HTTP"],
                             trusted_hosts=["127.0.0.1"])


@hookimpl
def kumo_get_queue_config(domain, tenant, campaign, routing_domain):
    if domain == "slow.test":
        return QueueConfig.from_options({{"retry_interval": "1h"}})
    return QueueConfig.from_options({{"retry_interval": "2s", "max_retry_interval": "4s"}})


@hookimpl
def kumo_get_egress_path_config(domain, egress_source, site_name):
    return EgressPathConfig.from_options({{
        "smtp_port": {sink_port}, "prohibited_hosts": [], "enable_tls": "Disabled",
    }})
'''


def zones() -> dict[str, Any]:
    """Each test domain's MX: its own host name and loopback address (its own site)."""
    out: dict[str, Any] = {}
    for domain, address in SITES.items():
        out[domain] = {"MX": [(10, f"mx.{domain}")]}
        out[f"mx.{domain}"] = {"A": [address]}
    out["slow.test"] = {"MX": [(10, "mx.ok.test")]}
    return out


#: Ports tried for the sinks before giving up (see :meth:`Sinks.start`).
_PORT_ATTEMPTS = 5


class Sinks:
    """The two recording sinks, served from a thread with its own event loop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.sinks = [RecordingSink(ip, self.port) for ip in SITES.values()]
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.dns = TestDnsServer(zones())

    def start(self) -> Sinks:
        self.dns.start()
        self._thread.start()
        # The sinks share one port on their own addresses. A free port on one address can
        # be taken on another by a parallel test before all are bound: then try another.
        for attempt in range(_PORT_ATTEMPTS):
            try:
                for sink in self.sinks:
                    asyncio.run_coroutine_threadsafe(sink.start(), self.loop).result(10)
                return self
            except OSError:
                for sink in self.sinks:
                    asyncio.run_coroutine_threadsafe(sink.stop(), self.loop).result(10)
                if attempt == _PORT_ATTEMPTS - 1:
                    raise
                self.port = free_port()
                for sink in self.sinks:
                    sink.port = self.port
        return self

    def delivered(self) -> Counter[str]:
        """Messages received per recipient domain."""
        async def count() -> Counter[str]:
            return Counter(m.recipient.rpartition("@")[2] for s in self.sinks for m in s.messages)
        return asyncio.run_coroutine_threadsafe(count(), self.loop).result(10)

    def stop(self) -> None:
        for sink in self.sinks:
            asyncio.run_coroutine_threadsafe(sink.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()  # its selector and self-pipe sockets go with it
        self.dns.stop()


class Node(ServeProcess):
    """``kumocore serve`` (with ``workers`` workers) as a child process in its own session,
    started at once. Its ESMTP and HTTP ports are held (see
    :mod:`bench.common.serve_process`): read them after :meth:`wait_ready`, as a start
    whose port was taken moves it."""

    def __init__(self, root: Path, sink_port: int, dns: str, workers: int = 2) -> None:
        self.root = root
        policy = root / "policy.py"
        policy.write_text(POLICY.format(dns=dns, spool=str(root / "spool"), sink_port=sink_port))
        # The node's Unix sockets go under TMPDIR: a short one, as a test's tmp_path (longer
        # under pytest-xdist) can make their paths longer than AF_UNIX allows (107 bytes).
        self.tmp = Path(tempfile.mkdtemp(prefix="kc-"))
        super().__init__(policy, root / "kumocore.log", {"TMPDIR": str(self.tmp)},
                         workers=workers, shutdown_timeout=3,
                         listen_ports=["S_SMTP", "S_HTTP"])  # fmt: skip
        self.start()

    smtp_port = listener_port("S_SMTP")  # held (bench.common.serve_process)
    http_port = listener_port("S_HTTP")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def wait_ready(self, timeout: float = 60.0) -> Node:
        """Until ``kumocore ready`` is logged (blocking: the callers are not async),
        started again on other ports if a port was taken."""
        return self.wait_until_ready(timeout)

    def send(self, recipients: list[str]) -> None:
        """One message per recipient, over SMTP (each must get 250)."""
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=30) as client:
            for rcpt in recipients:
                client.sendmail("sender@src.test", [rcpt],
                                f"Subject: status test\r\nTo: {rcpt}\r\n\r\nhello\r\n")

    def api(self, path: str, body: Any = None) -> Any:
        """GET ``path`` (POST ``body`` as JSON when given); the decoded JSON answer."""
        request = urllib.request.Request(
            self.url + path, data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def stop(self, timeout: float = 15.0) -> None:
        super().stop(timeout)
        shutil.rmtree(self.tmp, ignore_errors=True)
