"""``kumocore tsa serve`` as a process: KumoMTA-style records in, actions out to a
kumocore node subscribed over HTTP, the CLI against it, and a policy with nothing to serve."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from bench.common.redis_server import free_port
from bench.common.serve_process import KUMOCORE
from kumocore.node.runtime import Runtime
from kumocore.tsa.setup import configure
from tests.tsa.test_http_and_validate import kumomta_record

pytestmark = pytest.mark.slow

RULES = """
["x.test"]
mx_rollup = false
[["x.test".automation]]
regex = "\\\\[TS04\\\\]"
action = "Suspend"
duration = "30 minutes"
"""


@contextlib.contextmanager
def running_daemon(tmp_path: Path, state_file: Path) -> Iterator[str]:
    """``kumocore tsa serve`` on a free port with ``state_file``; stopped with SIGTERM."""
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    policy = tmp_path / "tsa.lua"
    policy.write_text(
        "local shaping = require 'policy-extras.shaping'\n"
        f"shaping:setup_with_automation {{ no_default_files = true, extra_files = {{ '{rules}' }},"
        " publish = { 'local' }, subscribe = { 'local' } }\n")
    port = free_port()
    log = tmp_path / "tsa.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(KUMOCORE), "tsa", "serve", "--policy", str(policy), "--listen",
             f"127.0.0.1:{port}", "--state-file", str(state_file)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while "kumocore tsa ready" not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=15) == 0, log.read_text()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[str]:
    with running_daemon(tmp_path, tmp_path / "tsa-state.json") as url:
        yield url


TS04 = {"code": 421, "enhanced_code": None, "content": "[TS04] deferred", "command": None}


async def _actions(daemon: str) -> list[dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.get(
            f"{daemon}/api/admin/tsa/v1") as response:  # fmt: skip
        assert response.status == 200
        body = await response.json()
    actions: list[dict[str, object]] = body["actions"]
    return actions


async def test_a_restarted_daemon_keeps_its_actions_from_its_state_file(tmp_path: Path) -> None:
    state = tmp_path / "tsa-state.json"
    with running_daemon(tmp_path, state) as daemon:
        async with aiohttp.ClientSession() as http, http.post(
            f"{daemon}/publish_log_v1", json=kumomta_record(response=TS04)
        ) as response:
            assert response.status == 200
        deadline = time.monotonic() + 10
        while not (before := await _actions(daemon)) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert [a["kind"] for a in before] == ["Suspend"]
    with running_daemon(tmp_path, state) as daemon:  # SIGTERM saved it; a new process
        after = await _actions(daemon)
        async with aiohttp.ClientSession() as http, http.get(f"{daemon}/tsa/status") as status:
            assert (status.status, await status.text()) == (200, "TSA Daemon OK")
    assert [(a["id"], a["expires"]) for a in after] == [(a["id"], a["expires"]) for a in before]


async def test_the_daemon_turns_published_records_into_actions_a_subscriber_applies(
    daemon: str,
) -> None:
    async with aiohttp.ClientSession() as http, http.post(
        f"{daemon}/publish_log_v1", json=kumomta_record(response=TS04)
    ) as response:
        assert response.status == 200
    # A kumocore node subscribed over HTTP (subscribe = { 'http://...' }) applies it.
    node = Runtime(load_entrypoints=False)
    engine = configure(node, lambda domain, site: [], [], [daemon])
    assert engine.store.label == f"http {daemon}" and not engine.match_locally
    deadline = time.monotonic() + 10
    while not engine.actions and time.monotonic() < deadline:
        await engine.sync()
        await asyncio.sleep(0.1)
    [action] = engine.actions.values()
    assert action.kind == "Suspend" and action.site == "src->mx.x.test@smtp_client"
    listed = await asyncio.to_thread(
        subprocess.run, [str(KUMOCORE), "tsa", "list", "--endpoint", daemon],
        capture_output=True, text=True, timeout=30)  # fmt: skip
    assert "Suspend on src->mx.x.test@smtp_client" in listed.stdout, listed
    assert await engine.cancel(action.id)  # a subscriber's cancel goes to the service
    await engine.sync()
    assert engine.actions == {}
    await engine.store.close()  # type: ignore[attr-defined]


def test_a_policy_without_automation_is_refused(tmp_path: Path) -> None:
    policy = tmp_path / "none.lua"
    policy.write_text("local kumo = require 'kumo'\n")
    result = subprocess.run([str(KUMOCORE), "tsa", "serve", "--policy", str(policy),
                             "--listen", f"127.0.0.1:{free_port()}"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1
    assert "no automation to serve" in result.stderr
