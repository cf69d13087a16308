"""A 250 survives kill -9: messages acknowledged over SMTP are still spooled after the
process is killed and restarted (real ``kumocore serve``, RocksDB spools in a tmp dir)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from bench.common.serve_process import ServeProcess, free_port
from bench.common.smtp_client import RawSmtpClient

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


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServeProcess, int, int]]:
    smtp_port, http_port, closed_port = free_port(), free_port(), free_port()
    policy = tmp_path / "policy.py"
    policy.write_text(POLICY.format(spool=str(tmp_path / "spool"), smtp_port=smtp_port,
                                    http_port=http_port, closed_port=closed_port))
    kumo = ServeProcess(policy, tmp_path / "kumocore.log")
    yield kumo, smtp_port, http_port
    kumo.stop()


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
    server: tuple[ServeProcess, int, int],
) -> None:
    kumo, smtp_port, http_port = server
    kumo.start()
    await kumo.wait_for_smtp(smtp_port)
    accepted = await send_messages(smtp_port)
    assert len(accepted) == MESSAGES
    kumo.kill9()

    kumo.start()
    await kumo.wait_for_smtp(smtp_port)
    assert recovered_count(kumo.log) == MESSAGES
    async with aiohttp.ClientSession() as session:
        for message_id, recipient in accepted.items():
            url = (f"http://127.0.0.1:{http_port}/api/admin/inspect-message/v1"
                   f"?id={message_id}&want_body=true")
            async with session.get(url) as response:
                assert response.status == 200, await response.text()
                body = await response.json()
            assert body["message"]["recipient"] == recipient
            assert "Subject: durable" in body["message"]["data"]
