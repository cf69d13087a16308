"""``kumo.shaping.load`` of ``http://`` sources (a tsa-daemon's generated shaping.toml,
shared rules on a web server): fetched with a bounded time and size, TOML or JSON by the
URL's path, a failure as ``remote_load`` says, skipped with ``skip_remote``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from kumocore_lua_policy.extras import shaping_remote
from kumocore_lua_policy.extras.datafile import DataFileError
from kumocore_lua_policy.extras.shaping import load

RULES = '["example.com"]\nmx_rollup = false\nconnection_limit = 7\n'


@pytest.fixture
async def web_server() -> AsyncIterator[str]:
    async def toml(_: web.Request) -> web.Response:
        return web.Response(text=RULES)

    async def json_rules(_: web.Request) -> web.Response:
        return web.json_response({"example.com": {"mx_rollup": False, "connection_limit": 9}})

    async def huge(_: web.Request) -> web.StreamResponse:
        reply = web.StreamResponse()
        await reply.prepare(_)
        for _i in range(300):
            await reply.write(b"#" * 65536 + b"\n")
        return reply

    async def never(_: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        return web.Response()

    app = web.Application()
    app.router.add_get("/get_config_v1/shaping.toml", toml)
    app.router.add_get("/rules", json_rules)
    app.router.add_get("/huge.toml", huge)
    app.router.add_get("/never.toml", never)
    runner = web.AppRunner(app, shutdown_timeout=0.1)  # `never` is still waiting
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


def _limit(shaping: object, domain: str = "example.com") -> object:
    config = shaping.get_egress_path_config(domain, "src", domain)  # type: ignore[attr-defined]
    return config.connection_limit.limit


async def test_a_toml_url_and_a_json_url_load_like_files(web_server: str) -> None:
    shaping = await load([f"{web_server}/get_config_v1/shaping.toml"])
    assert _limit(shaping) == 7
    shaping = await load([f"{web_server}/get_config_v1/shaping.toml", f"{web_server}/rules"])
    assert _limit(shaping) == 9  # later sources layer over earlier ones


async def test_a_failed_fetch_is_ignored_by_default_and_an_error_when_asked(
    web_server: str, tmp_path: Path
) -> None:
    local = tmp_path / "local.toml"
    local.write_text(RULES)
    shaping = await load([str(local), f"{web_server}/missing.toml"])
    assert _limit(shaping) == 7 and shaping.get_errors() == []
    with pytest.raises(DataFileError, match=r"missing.toml.*HTTP status 404"):
        await load([str(local), f"{web_server}/missing.toml"], {"remote_load": "Error"})
    warned = await load([f"{web_server}/missing.toml"], {"remote_load": "Warn"})
    assert any("HTTP status 404" in w for w in warned.get_warnings())


async def test_skip_remote_does_not_fetch(web_server: str) -> None:
    shaping = await load([f"{web_server}/never.toml"], {"skip_remote": True})
    assert shaping.get_errors() == []


async def test_a_url_that_never_answers_costs_http_timeout(web_server: str) -> None:
    started = asyncio.get_running_loop().time()
    with pytest.raises(DataFileError, match=r"no answer within 0.3s"):
        await load([f"{web_server}/never.toml"], {"remote_load": "Error", "http_timeout": "300ms"})
    assert asyncio.get_running_loop().time() - started < 2


async def test_a_body_past_the_limit_is_refused(
    web_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shaping_remote, "MAX_REMOTE_BYTES", 1024 * 1024)
    with pytest.raises(DataFileError, match="larger than 1048576 bytes"):
        await load([f"{web_server}/huge.toml"], {"remote_load": "Error"})


async def test_bad_remote_options_are_refused() -> None:
    with pytest.raises(DataFileError, match="skip_remote"):
        await load([], {"skip_remote": "yes"})
    with pytest.raises(DataFileError, match="http_timeout"):
        await load([], {"http_timeout": "soon"})
