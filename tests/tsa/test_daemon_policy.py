"""KumoMTA's tsa-daemon policy in ``kumocore tsa serve`` (in this process): the ``tsa``
module only there, its listener options and their bounds, where the state goes,
``tsa_init`` once, and ``tsa_load_shaping_data`` asked again on KumoMTA's schedule."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.common.serve_process import free_port
from kumocore.errors import ConfigError, PolicyError
from kumocore.http.guard import TOO_LARGE
from kumocore.node.runtime import Runtime
from kumocore.tsa import daemon_policy
from kumocore.tsa.daemon import serve
from kumocore.tsa.daemon_policy import TsaModule
from tests.tsa.test_http_and_validate import kumomta_record

RULE = """
[["x.test".automation]]
regex = "{regex}"
action = "Suspend"
duration = "30 minutes"
"""


def write_policy(tmp_path: Path, init: str, shaping: str | None = None) -> Path:
    """A daemon policy: ``init`` is the body of its tsa_init handler; its shaping data is
    ``rules.toml`` loaded on every call (no memoize), or the ``shaping`` expression."""
    rules = tmp_path / "rules.toml"
    if not rules.exists():
        rules.write_text(RULE.replace("{regex}", "AAA"))
    policy = tmp_path / "tsa_init.lua"
    policy.write_text(
        "local tsa = require 'tsa'\nlocal kumo = require 'kumo'\n"
        f"kumo.on('tsa_init', function()\n{init}\nend)\n"
        "kumo.on('tsa_load_shaping_data', function()\n"
        f"  return {shaping or f'kumo.shaping.load {{ [[{rules}]] }}'}\nend)\n"
    )
    return policy


def listener(port: int, extra: str = "") -> str:
    return f"tsa.start_http_listener {{ listen = '127.0.0.1:{port}', {extra} }}"


@contextlib.asynccontextmanager
async def serving(policy: Path, port: int, **options: Any) -> AsyncIterator[str]:
    """``serve`` until the block ends; yields its URL once it answers."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve(str(policy), stop=stop, **options))
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                assert not task.done(), task.result()
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{url}/tsa/status"):
                        break  # it answers (a listener may refuse this host: 401)
                await asyncio.sleep(0.05)
        yield url
    finally:
        stop.set()
        await task


async def publish(url: str, content: str, site: str = "src->mx.x.test@smtp_client") -> int:
    record = kumomta_record(
        response={"code": 421, "enhanced_code": None, "content": content, "command": None},
        site=site,
    )
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/publish_log_v1", json=record) as response,
    ):
        return response.status


async def suspended(url: str) -> list[str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{url}/get_suspension_v1/suspended.json") as response,
    ):
        body = await response.json()
    return sorted(item["site_name"] for item in body["ready_q"])


async def test_require_tsa_fails_in_a_node_policy_with_where_it_works(tmp_path: Path) -> None:
    policy = tmp_path / "node.lua"
    policy.write_text("local tsa = require 'tsa'\n")
    with pytest.raises(PolicyError, match="module 'tsa' is only available to the tsa-daemon "
                       "policy run by `kumocore tsa serve`"):  # fmt: skip
        await Runtime().load(policy)


async def test_a_listener_option_kumomta_does_not_take_is_refused_by_name(
    tmp_path: Path,
) -> None:
    policy = write_policy(tmp_path, listener(free_port(), "max_connections = 5"))
    with pytest.raises(PolicyError, match="unknown option 'max_connections'"):
        await serve(str(policy), stop=asyncio.Event())


async def test_a_shaping_handler_answering_something_else_is_refused(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, listener(free_port()), shaping="{ rules = 1 }")
    expected = "must return the shaping data of kumo.shaping.load, got a table with rules"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        await serve(str(policy), stop=asyncio.Event())


async def test_command_line_options_the_policy_already_sets_are_refused(tmp_path: Path) -> None:
    init = f"{listener(free_port())}\ntsa.configure_tsa_db_path '{tmp_path}/t.db'"
    policy = write_policy(tmp_path, init)
    with pytest.raises(ConfigError, match="drop them"):
        await serve(str(policy), listen=f"127.0.0.1:{free_port()}", stop=asyncio.Event())
    with pytest.raises(ConfigError, match="drop --state-file"):
        await serve(str(policy), state_file=str(tmp_path / "s.json"), stop=asyncio.Event())


def test_the_db_path_names_the_state_file_and_memory_keeps_none() -> None:
    module = TsaModule()
    assert module.state_file() is None  # not said: --state-file decides
    module.configure_tsa_db_path("/var/spool/kumomta/tsa.db")
    assert module.state_file() == "/var/spool/kumomta/tsa.db.state"  # KumoMTA's file
    module.configure_tsa_db_path(":memory:")
    assert module.state_file() == ""
    with pytest.raises(ConfigError, match="URI file names"):
        module.configure_tsa_db_path("file:tsa.db?mode=memory")


async def test_a_body_over_request_body_limit_is_a_413(tmp_path: Path) -> None:
    port = free_port()
    policy = write_policy(tmp_path, listener(port, "request_body_limit = 2048"))
    async with serving(policy, port, state_file="") as url, aiohttp.ClientSession() as http:
        big = [kumomta_record(id=str(n)) for n in range(20)]  # about 6 KB of records
        async with http.post(f"{url}/publish_log_v1", json=big) as response:
            assert response.status == 413  # KumoMTA's text, as kumo.start_http_listener's
            assert await response.text() == TOO_LARGE
        async with http.post(f"{url}/publish_log_v1", json=big[:1]) as response:
            assert response.status == 200


async def test_shaping_data_is_asked_again_and_a_failed_reload_keeps_the_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(daemon_policy, "SHAPING_RELOAD_INTERVAL", 0.2)
    port, runs = free_port(), tmp_path / "tsa_init.runs"
    init = f"{listener(port)}\nlocal f = io.open([[{runs}]], 'a'); f:write('ran\\n'); f:close()"
    policy = write_policy(tmp_path, init)
    rules = tmp_path / "rules.toml"
    async with serving(policy, port, state_file="") as url:
        assert await publish(url, "BBB one") == 200
        await asyncio.sleep(0.3)
        assert await suspended(url) == []  # only AAA is a rule yet
        rules.write_text(RULE.replace("{regex}", "BBB"))
        await asyncio.sleep(0.6)  # asked again: BBB is the rule now
        assert await publish(url, "BBB two") == 200
        await _until(lambda: suspended(url), ["src->mx.x.test@smtp_client"])
        rules.write_text("not = [toml")  # the next answers fail: BBB stays
        await asyncio.sleep(0.6)
        assert await publish(url, "BBB three", site="src->mx2.x.test@smtp_client") == 200
        await _until(lambda: suspended(url),
                     ["src->mx.x.test@smtp_client", "src->mx2.x.test@smtp_client"])  # fmt: skip
    assert runs.read_text() == "ran\n"  # tsa_init: once, however often the data was asked


async def _until(read: Any, expected: list[str]) -> None:
    for _ in range(100):
        if await read() == expected:
            return
        await asyncio.sleep(0.05)
    assert await read() == expected


async def test_listeners_each_keep_their_options_and_tls_gets_a_self_signed_certificate(
    tmp_path: Path,
) -> None:
    plain, tls = free_port(), free_port()
    init = "\n".join([listener(plain, "trusted_hosts = { '127.0.0.5' }"),
                      listener(tls, "use_tls = true, hostname = 'tsa.test'")])  # fmt: skip
    policy = write_policy(tmp_path, init)
    async with serving(policy, plain, state_file="") as url, aiohttp.ClientSession() as http:
        async with http.get(f"{url}/tsa/status") as response:
            assert response.status == 401  # 127.0.0.1 is not among this listener's hosts
        async with http.get(f"https://127.0.0.1:{tls}/tsa/status", ssl=False) as response:
            assert (response.status, await response.text()) == (200, "TSA Daemon OK")
        with pytest.raises(aiohttp.ClientConnectionError):  # TLS only on that port
            async with http.get(f"http://127.0.0.1:{tls}/tsa/status"):
                pass


async def test_a_setup_with_automation_policy_may_take_its_listener_from_tsa_init(
    tmp_path: Path,
) -> None:
    port = free_port()
    rules = tmp_path / "rules.toml"
    rules.write_text(RULE.replace("{regex}", "AAA"))
    policy = tmp_path / "tsa.lua"
    policy.write_text(
        "local tsa = require 'tsa'\nlocal kumo = require 'kumo'\n"
        "local shaping = require 'policy-extras.shaping'\n"
        "shaping:setup_with_automation { no_default_files = true,"
        f" extra_files = {{ [[{rules}]] }}, publish = {{ 'local' }}, subscribe = {{ 'local' }} }}\n"
        f"kumo.on('tsa_init', function() {listener(port)} end)\n"
    )
    async with serving(policy, port, state_file="") as url:
        assert await publish(url, "AAA") == 200
        await _until(lambda: suspended(url), ["src->mx.x.test@smtp_client"])


async def test_a_policy_with_both_styles_is_refused(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, listener(free_port()))
    policy.write_text(
        policy.read_text() + "require('policy-extras.shaping'):setup_with_automation {"
        " no_default_files = true, publish = { 'local' }, subscribe = { 'local' } }\n"
    )
    with pytest.raises(ConfigError, match="both handles tsa_load_shaping_data and calls "
                       "setup_with_automation"):  # fmt: skip
        await serve(str(policy), stop=asyncio.Event())


async def test_the_listener_holds_at_most_64_connections_of_one_untrusted_peer(
    tmp_path: Path,
) -> None:
    port = free_port()
    policy = write_policy(tmp_path, listener(port))
    async with serving(policy, port, state_file="") as url:
        held = [await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.5", 0))
                for _ in range(64)]  # fmt: skip
        reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                       local_addr=("127.0.0.5", 0))  # fmt: skip
        held.append((reader, writer))
        answer = await asyncio.wait_for(reader.read(), 5)  # answered and closed at once
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b"max_connections_per_peer 64" in answer
        async with aiohttp.ClientSession() as http, http.get(f"{url}/tsa/status") as status:
            assert (status.status, await status.text()) == (200, "TSA Daemon OK")
        async with aiohttp.ClientSession() as http, http.get(f"{url}/api-docs/openapi.json") as d:
            paths = (await d.json())["paths"]
        assert {"/publish_log_v1", "/tsa/status", "/rapidoc"} <= set(paths)
        for _, writer in held:
            writer.close()


async def test_a_publish_a_web_page_could_send_cross_site_is_refused(tmp_path: Path) -> None:
    port = free_port()
    policy = write_policy(tmp_path, listener(port))
    body = json.dumps(kumomta_record(
        response={"code": 421, "enhanced_code": None, "content": "AAA", "command": None}))
    async with serving(policy, port, state_file="") as url, aiohttp.ClientSession() as http:
        # A "simple" POST: no preflight, so any page in a browser on a trusted host could.
        plain = {"Content-Type": "text/plain"}
        async with http.post(f"{url}/publish_log_v1", data=body, headers=plain) as response:
            assert response.status == 415
        assert await suspended(url) == []
        assert await publish(url, "AAA") == 200  # as KumoMTA's publishers send it
        await _until(lambda: suspended(url), ["src->mx.x.test@smtp_client"])
