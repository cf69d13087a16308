"""The automation HTTP endpoints on a real listener, and ``kumocore validate`` on a policy
whose automation rule is wrong."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from kumocore_lua_policy.extras import shaping
from kumocore_lua_policy.extras.shaping_automation import setup

from kumocore.node.runtime import Runtime
from kumocore.tsa.http import add_tsa_routes
from kumocore.tsa.setup import configure

KUMOCORE = Path(sys.executable).with_name("kumocore")

RULES = {"x.test": {"mx_rollup": False, "automation": [
    {"regex": r"4\.7\.28", "action": {"SetConfig": {"name": "connection_limit", "value": 2}},
     "duration": "1 hour"},
    {"regex": r"\[TS04\]", "action": ["Suspend", "SuspendTenant"], "duration": "1 hour"}]}}



def kumomta_record(**extra: Any) -> dict[str, Any]:
    """A record as KumoMTA's shaping helper POSTs it (recipient as a list, unix seconds)."""
    return {
        "type": "TransientFailure", "id": "abc", "sender": "s@a.test",
        "recipient": ["u@x.test"], "queue": "x.test", "site": "src->mx.x.test@smtp_client",
        "egress_source": "src", "timestamp": int(time.time()),
        "response": {"code": 421, "enhanced_code": {"class": 4, "subject": 7, "detail": 28},
                     "content": "rate limited", "command": None},
        **extra,
    }  # fmt: skip


@pytest.fixture
async def node() -> AsyncIterator[tuple[str, Runtime]]:
    runtime = Runtime(load_entrypoints=False)
    data = await shaping.load([RULES])
    table = setup(data, lambda *a: configure(runtime, *a), ["local"], ["local"])
    assert table["rule_count"] == 2
    assert runtime.tsa is not None
    runtime.tsa.start()
    app = web.Application()
    add_tsa_routes(app, runtime)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", runtime
    await runtime.tsa.stop()
    await runner.cleanup()


async def test_a_record_posted_as_kumomta_publishes_it_creates_a_config_override(
    node: tuple[str, Runtime],
) -> None:
    url, runtime = node
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/publish_log_v1", json=kumomta_record()) as response:
            assert response.status == 200
        deadline = time.monotonic() + 5
        actions: list[dict[str, Any]] = []
        while not actions and time.monotonic() < deadline:
            async with http.get(f"{url}/api/admin/tsa/v1") as response:
                actions = (await response.json())["actions"]
        [action] = actions
        assert (action["kind"], action["name"], action["value"]) == (
            "SetConfig", "connection_limit", 2)
        assert action["site_name"] == "mx.x.test" and action["source"] == "src"
        assert runtime.tsa is not None
        await runtime.tsa.sync()
        async with http.get(f"{url}/get_config_v1/shaping.toml") as response:
            text = await response.text()
        assert '["x.test"]\nmx_rollup = true' in text  # the domain, as KumoMTA's daemon
        assert '["x.test".sources."src"]' in text and "connection_limit = 2" in text
        async with http.delete(f"{url}/api/admin/tsa/v1", json={"id": action["id"]}) as r:
            assert r.status == 200
        async with http.delete(f"{url}/api/admin/tsa/v1", json={"id": action["id"]}) as r:
            assert r.status == 404


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "request body is not JSON"),
        (b'{"type": "Delivery", "recipient": "nobody"}', 400, "record 0: expected a log record"),
        (b"[1]", 400, "record 0"),
    ],
)
async def test_a_bad_publish_body_gets_a_json_error(
    node: tuple[str, Runtime], body: bytes, status: int, error: str
) -> None:
    url, _ = node
    async with aiohttp.ClientSession() as http, http.post(
        f"{url}/publish_log_v1", data=body, headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == status
        assert error in (await response.json())["error"]


@pytest.mark.parametrize("recipient", ["postmaster", "<Postmaster>", ["postmaster"]])
async def test_a_record_for_the_local_postmaster_is_accepted_and_ignored(
    node: tuple[str, Runtime], recipient: object
) -> None:
    url, runtime = node
    record = {**kumomta_record(), "recipient": recipient}
    async with aiohttp.ClientSession() as http, http.post(
        f"{url}/publish_log_v1", json=record) as response:
        assert response.status == 200, await response.text()
    assert runtime.tsa is not None and runtime.tsa.counters["records"] == 0


def test_validate_reports_a_bad_automation_rule_with_file_and_key(tmp_path: Path) -> None:
    rules = tmp_path / "tsa-rules.toml"
    rules.write_text('[["gmail.com".automation]]\nregex = "TS04"\nduration = "2h"\n'
                     'action = { SetConfig = { name = "max_mesage_rate", value = "1/s" } }\n')
    policy = tmp_path / "policy.lua"
    policy.write_text(
        "local shaping = require 'policy-extras.shaping'\n"
        "local shaper = shaping:setup_with_automation {\n"
        f"  no_default_files = true, extra_files = {{ '{rules}' }},\n"
        "  publish = { 'local' }, subscribe = { 'local' },\n}\n")
    result = subprocess.run([str(KUMOCORE), "validate", "--policy", str(policy)],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert str(rules) in output
    assert '"gmail.com".automation[1].action.SetConfig.name' in output
    assert "'max_mesage_rate' is not a kumo.make_egress_path option" in output


async def test_kumomta_subscribers_get_current_and_new_suspensions_over_the_websocket(
    node: tuple[str, Runtime],
) -> None:
    url, runtime = node
    ts04 = {"code": 421, "enhanced_code": None, "content": "[TS04] deferred", "command": None}
    async with aiohttp.ClientSession() as http:
        await http.post(f"{url}/publish_log_v1", json=kumomta_record(
            response=ts04, queue="acme@x.test", site="a->mx.x.test@smtp_client",
            egress_source="a"))  # fmt: skip
        assert runtime.tsa is not None
        while len(runtime.tsa.actions) < 2:
            await runtime.tsa.sync()
        async with http.ws_connect(f"{url}/subscribe_event_v1") as ws:
            first = [await ws.receive_json(timeout=5) for _ in range(2)]
            kinds = sorted(next(iter(item)) for item in first)
            assert kinds == ["ReadyQSuspension", "SchedQSuspension"]
            ready = next(i["ReadyQSuspension"] for i in first if "ReadyQSuspension" in i)
            assert ready["site_name"] == "a->mx.x.test@smtp_client" and ready["source"] == "a"
            assert ready["expires"].endswith("Z") and "TS04" in ready["reason"]
            sched = next(i["SchedQSuspension"] for i in first if "SchedQSuspension" in i)
            assert (sched["tenant"], sched["domain"]) == ("acme", "x.test")
            # A new suspension (another path) arrives as it is recorded.
            await http.post(f"{url}/publish_log_v1", json=kumomta_record(
                response=ts04, site="b->mx.x.test@smtp_client", egress_source="b"))
            new = await ws.receive_json(timeout=5)
            assert new["ReadyQSuspension"]["site_name"] == "b->mx.x.test@smtp_client"


async def test_a_node_without_automation_answers_404_to_publishers() -> None:
    runtime = Runtime(load_entrypoints=False)
    app = web.Application()
    add_tsa_routes(app, runtime)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{port}/publish_log_v1", json=kumomta_record()
        ) as response:
            assert response.status == 404
            assert "not configured" in (await response.json())["error"]
    finally:
        await runner.cleanup()


def test_a_kumomta_daemon_generated_shaping_file_reads_as_config_actions() -> None:
    from kumocore.tsa.kumomta_daemon import config_overrides

    # The layout KumoMTA's tsa-daemon generates (toml_edit, comments above each option).
    text = (
        "# Generated by tsa-daemon\n# Number of entries: 2\n\n"
        '["gmail.com"]\nmx_rollup = true\n\n["gmail.com".sources]\n\n'
        '["gmail.com".sources.src1]\n# reason: automation rule: RL0000\n'
        "# expires: 2030-01-02T03:04:05+00:00\n"
        'max_connection_rate = "10000/h"\n\n'
        '["x.test"]\nmx_rollup = false\n\n["x.test".sources]\n\n["x.test".sources.src2]\n'
        "# reason: automation rule: TS03\n# expires: 2030-01-02T04:00:00Z\n"
        "connection_limit = 2\n\n# Generated by tsa-daemon\n# Number of entries: 2\n"
    )
    first, second = config_overrides(text, "tsa-daemon http://t")
    assert (first.kind, first.site_name, first.source, first.name, first.value) == (
        "SetConfig", "gmail.com", "src1", "max_connection_rate", "10000/h")
    assert first.expires == 1893553445.0 and first.reason == "automation rule: RL0000"
    assert (second.kind, second.domain, second.source, second.value) == (
        "SetDomainConfig", "x.test", "src2", 2)
    assert second.expires == 1893556800.0


async def test_a_subscriber_reads_a_daemon_that_only_has_kumomtas_documents(
    node: tuple[str, Runtime],
) -> None:
    """Where ``/api/admin/tsa/v1`` is 404 (a KumoMTA tsa-daemon), the subscriber reads
    ``/get_suspension_v1/suspended.json`` and ``/get_config_v1/shaping.toml`` (here served
    by kumocore's own handlers for those two paths, on a listener without the rest)."""
    from kumocore.tsa.http import TsaRoutes
    from kumocore.tsa.remote import RemoteActionStore

    url, runtime = node
    ts04 = {"code": 421, "enhanced_code": None, "content": "[TS04] deferred", "command": None}
    async with aiohttp.ClientSession() as http:
        for record in (kumomta_record(), kumomta_record(response=ts04, queue="acme@x.test")):
            async with http.post(f"{url}/publish_log_v1", json=record) as response:
                assert response.status == 200
    assert runtime.tsa is not None
    while len(runtime.tsa.actions) < 3:
        await runtime.tsa.sync()
    routes = TsaRoutes(runtime)
    app = web.Application()
    app.router.add_get("/get_suspension_v1/suspended.json", routes.suspensions)
    app.router.add_get("/get_config_v1/shaping.toml", routes.config_toml)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async def site_of(domain: str) -> str | None:  # the MX rollup the node's DNS would give
        return {"x.test": "mx.x.test"}.get(domain)

    # KumoMTA's generated file names the domain; the subscriber rolls it up to its site.
    store = RemoteActionStore(f"http://127.0.0.1:{port}", site_of=site_of)
    try:
        async with aiohttp.ClientSession() as http, http.get(
                f"http://127.0.0.1:{port}/get_suspension_v1/suspended.json") as listed:
            suspended = await listed.json()
        # As KumoMTA's daemon: a ready queue's suspension by its bare hash, a tenant's
        # with what it holds in its reason.
        (ready,) = suspended["ready_q"]
        assert re.fullmatch(r"[0-9a-f]{64}", ready["rule_hash"]), ready
        (sched,) = suspended["sched_q"]
        assert sched["reason"].endswith(" tenant=acme domain=x.test"), sched
        seen = await store.active()
        assert store.kumomta
        kinds = sorted(a.kind for a in seen.values())
        assert kinds == ["SetConfig", "Suspend", "SuspendTenant"]
        expected = {a.kind: a.expires for a in runtime.tsa.actions.values()}
        for action in seen.values():
            assert abs(action.expires - expected[action.kind]) < 1.0, action
        config = next(a for a in seen.values() if a.kind == "SetConfig")
        assert (config.site_name, config.source, config.name, config.value) == (
            "mx.x.test", "src", "connection_limit", 2)
        assert not await store.cancel(config.id)  # a tsa-daemon's actions only expire
    finally:
        await store.close()
        await runner.cleanup()
