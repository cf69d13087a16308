"""kumo.http.build_client against a real aiohttp server, from Lua and from Python."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from kumocore import PolicyError

from .support import Recorder, load, make_runtime


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({
        "method": request.method,
        "auth": request.headers.get("Authorization"),
        "x": request.headers.get("X-Thing"),
        "agent": request.headers.get("User-Agent"),
        "ctype": request.headers.get("Content-Type"),
        "body": body.decode(),
    }, headers={"X-Reply": "yes"})


async def _missing(request: web.Request) -> web.Response:
    return web.Response(status=404, text="no such thing")


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(1.5)
    return web.Response(text="late")


@pytest.fixture
async def http_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/echo", _echo)
    app.router.add_get("/missing", _missing)
    app.router.add_get("/slow", _slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_lua_get_post_put_with_headers_auth_and_status(tmp_path: Path, http_url: str) -> None:
    recorder = Recorder()
    recorder.value = http_url
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local base = kumo.test.value()
        local client = kumo.http.build_client { user_agent = 'kumo-test/1', timeout = '5s' }

        local r = client:get(base .. '/echo'):header('X-Thing', 'one'):bearer_auth('tok'):send()
        local got = kumo.json_decode(r:text())
        kumo.test.mark({ r:status_code(), r:status_reason(), r:status_is_success(),
                         got.method, got.auth, got.x, got.agent, r:headers()['x-reply'] })

        local p = client:post(base .. '/echo')
        p:headers { ['Content-Type'] = 'application/json' }
        p:basic_auth('user', 'secret')
        p:body(kumo.json_encode { key = 'value' })
        local got = kumo.json_decode(p:send():text())
        kumo.test.mark({ got.method, got.auth, got.ctype, got.body })

        local got = kumo.json_decode(
          client:put(base .. '/echo'):form_url_encoded({ a = 'b c' }):send():bytes())
        kumo.test.mark({ got.method, got.ctype, got.body })

        local missing = client:get(base .. '/missing'):send()
        kumo.test.mark({ missing:status_code(), missing:status_is_client_error(),
                         missing:status_is_success(), missing:text() })
        client:close()
    """, recorder=recorder)
    basic = "Basic " + base64.b64encode(b"user:secret").decode()
    assert recorder.marks == [
        [200, "OK", True, "GET", "Bearer tok", "one", "kumo-test/1", "yes"],
        ["POST", basic, "application/json", '{"key":"value"}'],
        ["PUT", "application/x-www-form-urlencoded", "a=b+c"],
        [404, True, False, "no such thing"],
    ]


async def test_lua_request_timeout_is_an_error_naming_the_url(
    tmp_path: Path, http_url: str
) -> None:
    recorder = Recorder()
    recorder.value = http_url
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local ok, err = pcall(function()
          return kumo.http.build_client({}):get(kumo.test.value() .. '/slow'):timeout('0.2s'):send()
        end)
        kumo.test.mark({ ok, tostring(err) })
    """, recorder=recorder)
    [[ok, err]] = recorder.marks
    assert ok is False
    assert "/slow timed out after 0.2 s" in err


async def test_unknown_client_option_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="unknown option 'proxy'"):
        await load(tmp_path, "require('kumo').http.build_client { proxy = 'x' }")


async def test_python_policy_uses_the_same_client(http_url: str) -> None:
    kumo = make_runtime().kumo
    client = kumo.http.build_client(timeout=5)
    response = await client.post(f"{http_url}/echo").header("X-Thing", "py").body("hi").send()
    assert response.status_code() == 200
    assert response.headers()["x-reply"] == "yes"
    got = kumo.json_decode(response.text())
    assert (got["method"], got["x"], got["body"]) == ("POST", "py", "hi")
    await client.close()


async def test_a_client_dropped_without_close_releases_its_connections(http_url: str) -> None:
    import gc
    import warnings

    kumo = make_runtime().kumo
    client = kumo.http.build_client()
    assert (await client.get(f"{http_url}/echo").send()).status_code() == 200
    connector = client.session().connector
    assert connector is not None and not connector.closed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del client
        gc.collect()
        await asyncio.sleep(0.05)  # the pool is closed by a task the finalizer started
    assert connector.closed
    assert not [w for w in caught if "Unclosed" in str(w.message)]


def test_a_dropped_client_collected_after_its_loop_ended_does_not_warn_unclosed() -> None:
    import gc

    from kumocore.http.client import HttpClient

    async def build_and_drop() -> None:
        client = HttpClient({})
        client.session()
        client.cycle = client  # type: ignore[attr-defined]  # freed by the gc only

    asyncio.run(build_and_drop())
    gc.collect()  # "Unclosed client session" here would fail the test (warnings are errors)
