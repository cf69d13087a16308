"""A 250 survives kill -9: messages acknowledged over SMTP are still spooled after the
process is killed and restarted (real ``kumocore serve``, RocksDB spools in a tmp dir)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from bench.common.smtp_client import RawSmtpClient

KUMOCORE = Path(sys.executable).with_name("kumocore")
MESSAGES = 20

POLICY = '''
from kumocore import hookimpl
from kumocore.config import EgressPathConfig, QueueConfig

SPOOL = {spool!r}


@hookimpl
def kumo_init(kumo):
    kumo.define_spool(name="data", path=SPOOL + "/data", kind="RocksDB")
    kumo.define_spool(name="meta", path=SPOOL + "/meta", kind="RocksDB")
    kumo.start_esmtp_listener(listen="127.0.0.1:{smtp_port}", hostname="kill9.test")
    kumo.start_http_listener(listen="127.0.0.1:{http_port}")


@hookimpl
def kumo_get_queue_config(domain, tenant, campaign, routing_domain):
    # Every message goes to a host on a port nobody listens on, and is retried only
    # much later: nothing can be delivered while the test runs.
    return QueueConfig.from_options({{
        "retry_interval": "1h",
        "protocol": {{"smtp": {{"mx_list": ["127.0.0.1"]}}}},
    }})


@hookimpl
def kumo_get_egress_path_config(domain, egress_source, site_name):
    return EgressPathConfig.from_options({{
        "smtp_port": {closed_port}, "prohibited_hosts": [], "enable_tls": "Disabled",
    }})
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Kumocore:
    """``kumocore serve`` as a child process in its own session."""

    def __init__(self, policy: Path, log: Path) -> None:
        self.policy, self.log = policy, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "KUMOCORE_BLOCK_PLUGINS": "hello,webhook_sink"}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(KUMOCORE), "--log-level", "info", "serve", "--workers", "1",
                 "--policy", str(self.policy)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)

    def kill9(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Kumocore, int, int]]:
    smtp_port, http_port, closed_port = free_port(), free_port(), free_port()
    policy = tmp_path / "policy.py"
    policy.write_text(POLICY.format(spool=str(tmp_path / "spool"), smtp_port=smtp_port,
                                    http_port=http_port, closed_port=closed_port))
    kumo = Kumocore(policy, tmp_path / "kumocore.log")
    yield kumo, smtp_port, http_port
    kumo.stop()


async def wait_for_smtp(kumo: Kumocore, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert kumo.process is not None
        if kumo.process.poll() is not None:
            raise AssertionError(f"kumocore exited:\n{kumo.log.read_text()}")
        try:
            client = await RawSmtpClient.connect(port, timeout=1.0)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        assert (await client.read_reply()).code == 220
        await client.close()
        return
    raise AssertionError(f"kumocore did not start:\n{kumo.log.read_text()}")


async def send_messages(port: int) -> dict[str, str]:
    """Send MESSAGES messages; recipient by spool id, for each one that got a 250."""
    client = await RawSmtpClient.connect(port)
    await client.hello()
    accepted = {}
    for index in range(MESSAGES):
        recipient = f"user{index}@example.com"
        _, final = await client.send_mail(
            "sender@example.com", [recipient], f"Subject: durable {index}\r\n\r\nbody\r\n")
        assert final.code == 250, str(final)
        accepted[final.text.removeprefix("OK ids=")] = recipient
    return accepted


def recovered_count(log: Path) -> int | None:
    """The ``messages`` of the last "spool recovered" line kumocore logged."""
    found = None
    for line in log.read_text().splitlines():
        if "spool recovered" in line:
            try:
                found = int(json.loads(line)["messages"])
            except (ValueError, KeyError):
                found = int(line.split("messages=")[1].split()[0])
    return found


@pytest.mark.slow
async def test_acknowledged_messages_survive_kill_9(
    server: tuple[Kumocore, int, int],
) -> None:
    kumo, smtp_port, http_port = server
    kumo.start()
    await wait_for_smtp(kumo, smtp_port)
    accepted = await send_messages(smtp_port)
    assert len(accepted) == MESSAGES
    kumo.kill9()

    kumo.start()
    await wait_for_smtp(kumo, smtp_port)
    assert recovered_count(kumo.log) == MESSAGES
    async with aiohttp.ClientSession() as session:
        for message_id, recipient in accepted.items():
            url = (f"http://127.0.0.1:{http_port}/api/admin/inspect-message/v1"
                   f"?id={message_id}&want_body=true")
            async with session.get(url) as response:
                assert response.status == 200, await response.text()
                body = await response.json()
            assert body["message"]["recipient"] == [recipient]
            assert "Subject: durable" in body["message"]["data"]
