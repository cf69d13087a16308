"""The admin CLI against a live admin API (kumocore.node.cli.main in a thread, and the script)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from kumocore.node.cli import main
from kumocore.node.runtime import Runtime
from tests.admin.conftest import Enqueue


@pytest.fixture
def endpoint(client: Any) -> str:
    return str(client.make_url("")).rstrip("/")


async def _run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()  # drop what the node logged while it started
    # The CLI blocks on urllib; the server runs on this loop, so call it from a thread.
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_queue_summary_prints_a_table_and_json_on_request(
    capsys: Any, endpoint: str, enqueue: Enqueue
) -> None:
    enqueue("a@example.com")
    enqueue("b@example.com")

    code, out, _ = await _run(capsys, "queue", "summary", "--endpoint", endpoint)
    assert code == 0
    assert "SCHEDULED QUEUE" in out
    assert any(line.split()[:2] == ["example.com", "2"] for line in out.splitlines())
    assert out.rstrip().endswith("2 messages: 2 scheduled, 0 ready, 0 connections")

    code, out, _ = await _run(capsys, "queue", "summary", "--json", "--endpoint", endpoint)
    assert code == 0 and json.loads(out)["totals"]["scheduled"] == 2


async def test_bounce_list_and_cancel_round_trip(
    runtime: Runtime, capsys: Any, endpoint: str, enqueue: Enqueue
) -> None:
    enqueue("a@example.com", tenant="acme")

    code, out, _ = await _run(
        capsys,
        "bounce",
        "--tenant",
        "acme",
        "--reason",
        "abuse",
        "--duration",
        "10m",
        "--endpoint",
        endpoint,
    )
    assert code == 0
    created = json.loads(out)
    assert created["bounced"] == {"acme@example.com": 1}

    code, out, _ = await _run(capsys, "bounce-list", "--endpoint", endpoint)
    assert [rule["id"] for rule in json.loads(out)] == [created["id"]]

    code, out, _ = await _run(capsys, "bounce-cancel", created["id"], "--endpoint", endpoint)
    assert code == 0 and json.loads(out) == {"id": created["id"]}
    assert runtime.services.queues.admin.list_bounces() == []


async def test_suspend_list_and_cancel_round_trip(capsys: Any, endpoint: str) -> None:
    code, out, _ = await _run(
        capsys, "suspend", "--domain", "example.com", "--reason", "slow", "--endpoint", endpoint
    )
    assert code == 0
    rule_id = json.loads(out)["id"]
    code, out, _ = await _run(capsys, "suspend-list", "--endpoint", endpoint)
    assert json.loads(out)[0]["domain"] == "example.com"
    code, out, _ = await _run(capsys, "suspend-cancel", rule_id, "--endpoint", endpoint)
    assert code == 0
    code, out, _ = await _run(capsys, "suspend-list", "--endpoint", endpoint)
    assert json.loads(out) == []


async def test_inspect_json_keeps_the_body_as_one_string(
    capsys: Any, endpoint: str, enqueue: Enqueue
) -> None:
    message = enqueue(data=b"Subject: cli\r\n\r\nhi\r\n")
    code, out, _ = await _run(capsys, "inspect", message.id, "--want-body", "--json",
                              "--endpoint", endpoint)  # fmt: skip
    assert code == 0
    assert json.loads(out)["message"]["data"] == "Subject: cli\r\n\r\nhi\r\n"


async def test_inspect_prints_the_body_as_lines_after_the_envelope(
    capsys: Any, endpoint: str, enqueue: Enqueue
) -> None:
    message = enqueue(data=b"Subject: cli\r\nX-A: 1\r\n\r\nhi\r\n")
    code, out, _ = await _run(capsys, "inspect", message.id, "--want-body", "--endpoint", endpoint)
    assert code == 0
    envelope, _, data = out.partition("--- message data ---\n")
    assert json.loads(envelope)["message"]["recipient"] == "user@example.com"
    assert "data" not in json.loads(envelope)["message"]
    assert data == "Subject: cli\nX-A: 1\n\nhi\n"


async def test_top_once_shows_rates_ready_and_scheduled_queues(
    capsys: Any, endpoint: str, enqueue: Enqueue
) -> None:
    enqueue("a@example.com")
    enqueue("b@example.com")
    code, out, err = await _run(capsys, "top", "--once", "--interval", "0.2",
                                "--endpoint", endpoint)  # fmt: skip
    assert code == 0, err
    assert "kumocore top" in out and "per second" in out
    assert "scheduled queues" in out and "example.com" in out
    assert "ready queues (egress paths)" in out


async def test_http_errors_exit_1_with_the_json_error(capsys: Any, endpoint: str) -> None:
    code, out, err = await _run(capsys, "bounce-cancel", "no-such-rule", "--endpoint", endpoint)
    assert code == 1 and out == ""
    assert "no-such-rule" in json.loads(err)["error"]

    code, _, err = await _run(capsys, "inspect", "f" * 32, "--endpoint", endpoint)
    assert code == 1 and "f" * 32 in json.loads(err)["error"]


async def test_rule_without_selector_needs_everything(
    capsys: Any, endpoint: str, runtime: Runtime
) -> None:
    code, _, err = await _run(capsys, "suspend", "--reason", "all", "--endpoint", endpoint)
    assert code == 1 and "--everything" in json.loads(err)["error"]
    assert runtime.services.queues.admin.list_suspensions() == []

    code, _, _ = await _run(
        capsys, "suspend", "--reason", "all", "--everything", "--endpoint", endpoint
    )
    assert code == 0 and len(runtime.services.queues.admin.list_suspensions()) == 1


async def test_unreachable_endpoint_exits_1(capsys: Any) -> None:
    # Port 1 on loopback: nothing listens there, so the connection is refused at once.
    code, _, err = await _run(capsys, "bounce-list", "--endpoint", "http://127.0.0.1:1")
    assert code == 1 and "cannot reach" in json.loads(err)["error"]


async def test_installed_script_prints_the_queue_summary(endpoint: str, enqueue: Enqueue) -> None:
    enqueue("a@example.com")
    script = Path(sys.executable).with_name("kumocore")
    if not script.exists():
        pytest.skip("the kumocore script is not installed next to this interpreter")
    process = await asyncio.create_subprocess_exec(
        str(script),
        "queue",
        "summary",
        "--endpoint",
        endpoint,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=15)
    assert process.returncode == 0, err.decode()
    assert "1 messages: 1 scheduled" in out.decode()
