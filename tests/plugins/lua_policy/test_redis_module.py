"""``require 'redis'`` (KumoMTA's mod-redis) against a real redis-server: the reference
example, argument and reply conversions, errors, refused options, ``response_timeout``
and the pool bound (``pool_size`` with ``wait_timeout``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.common.redis_server import RedisServer
from kumocore.node.runtime import Runtime

from .support import Recorder, load, make_runtime

#: KumoMTA's docs/reference/redis/open.md example, verbatim but for the URL literal.
DOCS_EXAMPLE = """\
local redis = require 'redis'

-- Open a connection and increment a counter, returning its new value.
-- Redis URL syntax is: 'redis://[<username>][:<password>@]<hostname>[:port][/[<db>][?protocol=<protocol>]]'
local conn = redis.open { node = 'redis://127.0.0.1/' }
print(conn:query('incr', 'test-count'))
"""


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[Any]:
    """A plain client, to set up and look at what the policy did."""
    from redis.asyncio import Redis

    client = Redis.from_url(redis_server.url, decode_responses=True, protocol=2)
    yield client
    await client.aclose()


_RUNTIMES: list[Runtime] = []


@pytest.fixture(autouse=True)
async def _shutdown() -> AsyncIterator[None]:
    """Shut each test's runtimes down: the plugin then closes its redis pools."""
    yield
    while _RUNTIMES:
        await _RUNTIMES.pop().hooks.shutdown()


async def load_policy(tmp_path: Path, source: str, value: Any = None) -> tuple[Recorder, Any]:
    recorder = Recorder()
    recorder.value = value
    runtime, policy = await load(tmp_path, source, recorder=recorder)
    _RUNTIMES.append(runtime)
    return recorder, policy


async def run_lua(tmp_path: Path, body: str, value: Any = None) -> list[Any]:
    """Run ``body`` as a policy's top level (``redis``, ``kumo``, ``mark`` in scope)."""
    recorder, _ = await load_policy(
        tmp_path,
        "local kumo = require 'kumo'\nlocal redis = require 'redis'\n"
        "local mark = kumo.test.mark\n" + body,
        value,
    )
    return recorder.marks


async def test_the_reference_example_increments_and_prints_the_counter(
    tmp_path: Path, redis_server: RedisServer, raw: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    await raw.set("test-count", 41)
    await load_policy(tmp_path, DOCS_EXAMPLE.replace("redis://127.0.0.1/", redis_server.url))
    assert capsys.readouterr().out == "42\n"
    assert await raw.get("test-count") == "42"


async def test_replies_are_converted_as_kumomta_converts_them(
    tmp_path: Path, redis_server: RedisServer, raw: Any
) -> None:
    await raw.rpush("list", "a", "b")
    await raw.set("bin", b"\x00\xff")  # not UTF-8: Lua cannot send it (nor in KumoMTA)
    marks = await run_lua(
        tmp_path,
        """
        local conn = redis.open { node = kumo.test.value() }
        mark({ math.type(conn:query('INCRBY', 'n', 2)), conn:query('get', 'n') })
        mark({ conn:query('set', 'k', 'OK'), conn:query('get', 'k'), conn:query('ping') })
        mark({ conn:query('get', 'missing') == nil, conn:query('lrange', 'list', 0, -1) })
        -- a nil item leaves no hole (KumoMTA pushes each item onto the table)
        mark(conn:query('mget', 'missing', 'k', 'n'))
        local bin = conn:query('get', 'bin')
        mark({ #bin, bin:byte(1), bin:byte(2) })
    """,
        redis_server.url,
    )
    assert marks[0] == ["integer", "2"]
    assert marks[1] == [True, "OK", "PONG"]  # the status OK is true, a stored "OK" a string
    assert marks[2] == [True, ["a", "b"]]
    assert marks[3] == ["OK", "2"]
    assert marks[4] == [2, 0, 255]


async def test_arguments_are_flattened_as_kumomta_writes_them(
    tmp_path: Path, redis_server: RedisServer, raw: Any
) -> None:
    await run_lua(
        tmp_path,
        """
        local conn = redis.open { node = kumo.test.value() }
        conn:query('rpush', 'l', 1, 2.5, true, false, { 'x', { 'y' } }, nil, 'z')
        conn:query('hset', 'h', { b = 2, a = 1 })
    """,
        redis_server.url,
    )
    assert await raw.lrange("l", 0, -1) == ["1", "2.5", "1", "0", "x", "y", "z"]
    assert await raw.hgetall("h") == {"a": "1", "b": "2"}


async def test_error_replies_fail_the_query_with_the_servers_text(
    tmp_path: Path, redis_server: RedisServer, raw: Any
) -> None:
    await raw.set("s", "text")
    marks = await run_lua(
        tmp_path,
        """
        local conn = redis.open { node = kumo.test.value() }
        local function try(...)
          local ok, err = pcall(conn.query, conn, ...)
          mark(ok and 'ok' or tostring(err))
        end
        try('incr', 's')
        try('lpush', 's', 'x')
        try('nosuchcommand')
        conn:query('multi')
        conn:query('incr', 's')
        try('exec')  -- an error inside the array reply fails it too
        try()
    """,
        redis_server.url,
    )
    assert marks[0] == "RedisConnection:query: ERR value is not an integer or out of range"
    assert marks[1].startswith("RedisConnection:query: WRONGTYPE Operation against a key")
    assert marks[2].startswith("RedisConnection:query: ERR unknown command 'nosuchcommand'")
    assert marks[3] == marks[0]
    assert marks[4].endswith("conn:query needs a command, e.g. conn:query('PING')")


@pytest.mark.parametrize(("options", "message"), [
    ("{ node = { 'redis://127.0.0.1:1/', 'redis://127.0.0.1:2/' } }", "several nodes make"),
    ("{ node = 'redis://127.0.0.1/', cluster = true }", "redis cluster connections are not"),
    ("{ node = { 'redis://127.0.0.1/' } }", "redis cluster connections are not"),
    ("{ node = 'redis://127.0.0.1/?protocol=resp3' }", "protocol=resp3 is not supported"),
    ("{ node = 'http://127.0.0.1/' }", "expected a redis://host:port/ URL"),
    ("{ node = 'redis://127.0.0.1/', pool_size = 0 }", "pool_size: expected a whole number"),
    ("{ node = 'redis://127.0.0.1/', wait_timeout = 'soon' }", "wait_timeout: expected"),
    ("{ node = 'redis://127.0.0.1/', pool = 3 }", "pool: unknown option"),
    ("{}", "node: expected a redis:// URL, got None"),
])  # fmt: skip
async def test_open_refuses_what_kumocore_cannot_honour(
    tmp_path: Path, options: str, message: str
) -> None:
    marks = await run_lua(
        tmp_path,
        f"""
        local ok, err = pcall(redis.open, {options})
        mark({{ ok, tostring(err) }})
    """,
    )
    assert marks[0][0] is False
    assert message in marks[0][1], marks[0][1]
    assert marks[0][1].startswith("kumo.redis.open: ")


async def test_one_node_in_a_list_with_cluster_false_is_a_single_node(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    marks = await run_lua(
        tmp_path,
        """
        local conn = redis.open { node = { kumo.test.value() }, cluster = false }
        mark(conn:query('ping'))
    """,
        redis_server.url,
    )
    assert marks == ["PONG"]


async def test_a_server_that_is_not_there_fails_the_query_not_the_open(tmp_path: Path) -> None:
    from bench.common.redis_server import free_port

    marks = await run_lua(
        tmp_path,
        """
        local conn = redis.open { node = kumo.test.value(), connect_timeout = '1s' }
        mark('opened')
        local ok, err = pcall(conn.query, conn, 'ping')
        mark({ ok, tostring(err) })
    """,
        f"redis://127.0.0.1:{free_port()}/",
    )
    assert marks[0] == "opened"
    assert marks[1][0] is False
    assert "Connection refused" in marks[1][1] or "Error" in marks[1][1], marks[1][1]


async def test_response_timeout_bounds_a_slow_command(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    started = time.monotonic()
    marks = await run_lua(
        tmp_path,
        """
        local conn = redis.open { node = kumo.test.value(), response_timeout = '300ms' }
        local ok, err = pcall(conn.query, conn, 'blpop', 'nothing', 5)
        mark({ ok, tostring(err) })
        -- the timed-out connection is not reused: the next reply is this query's own
        mark(conn:query('echo', 'after'))
    """,
        redis_server.url,
    )
    took = time.monotonic() - started
    assert marks[0] == [
        False,
        f"RedisConnection:query: redis {redis_server.url} did not "
        "answer BLPOP within response_timeout (0.3s)",
    ]
    assert marks[1] == "after"
    assert took < 3.0, took


async def test_without_response_timeout_a_blocking_command_waits_for_its_answer(
    tmp_path: Path, redis_server: RedisServer, raw: Any
) -> None:
    _, policy = await load_policy(
        tmp_path,
        """
        local kumo = require 'kumo'
        local redis = require 'redis'
        kumo.on('pop', function()
          local conn = redis.open { node = kumo.test.value() }
          return conn:query('blpop', 'jobs', 0)
        end)
    """,
        redis_server.url,
    )
    waiting = asyncio.create_task(policy.call_custom_event("pop"))
    await asyncio.sleep(0.5)
    assert not waiting.done()
    await raw.rpush("jobs", "one")
    assert await asyncio.wait_for(waiting, 5) == ["jobs", "one"]


async def test_the_pool_holds_at_most_pool_size_connections(
    tmp_path: Path, redis_server: RedisServer, raw: Any
) -> None:
    _, policy = await load_policy(
        tmp_path,
        """
        local kumo = require 'kumo'
        local redis = require 'redis'
        kumo.on('slow_incr', function()
          local conn = redis.open { node = kumo.test.value(), pool_size = 3 }
          conn:query('blpop', 'never', 0.2)  -- hold the connection a while
          return conn:query('incr', 'hits')
        end)
    """,
        redis_server.url,
    )
    before = len(await raw.client_list())
    calls = [policy.call_custom_event("slow_incr") for _ in range(12)]
    seen = 0

    async def watch() -> None:
        nonlocal seen
        while True:
            seen = max(seen, len(await raw.client_list()) - before)
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    started = time.monotonic()
    results = await asyncio.gather(*calls)
    took = time.monotonic() - started
    watcher.cancel()
    assert sorted(results) == list(range(1, 13))
    assert 1 <= seen <= 3, seen
    assert took >= 0.75, took  # 12 holds of 0.2 s, 3 at a time: at least 4 rounds


async def test_wait_timeout_bounds_the_wait_for_a_free_connection(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    _, policy = await load_policy(
        tmp_path,
        """
        local kumo = require 'kumo'
        local redis = require 'redis'
        local conn = redis.open { node = kumo.test.value(), pool_size = 1,
                                  wait_timeout = '200ms' }
        kumo.on('hold', function() return conn:query('blpop', 'never', 2) end)
        kumo.on('ping', function()
          local ok, err = pcall(conn.query, conn, 'ping')
          return tostring(err)
        end)
    """,
        redis_server.url,
    )
    holder = asyncio.create_task(policy.call_custom_event("hold"))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    error = await policy.call_custom_event("ping")
    waited = time.monotonic() - started
    assert error == (
        f"RedisConnection:query: no redis connection to {redis_server.url} "
        "became free within wait_timeout (0.2s; pool_size 1)"
    )
    assert 0.15 < waited < 1.5, waited
    assert await holder is None  # BLPOP timed out on the server: a nil reply


async def test_python_policies_reach_the_same_functions(
    redis_server: RedisServer, raw: Any
) -> None:
    runtime = make_runtime()
    _RUNTIMES.append(runtime)
    conn = runtime.kumo.redis.open(node=redis_server.url)
    assert await conn.query("INCR", "py") == 1
    assert await conn.query("SET", "k", "v") is True
    assert await conn.query("GET", "k") == "v"
    assert await raw.get("py") == "1"


async def test_a_pooled_connection_outlives_a_redis_restart(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    _, policy = await load_policy(
        tmp_path,
        """
        local kumo = require 'kumo'
        local redis = require 'redis'
        local conn = redis.open { node = kumo.test.value(), pool_size = 1 }
        kumo.on('incr', function() return conn:query('incr', 'n') end)
        """,
        redis_server.url,
    )
    assert await policy.call_custom_event("incr") == 1
    redis_server.kill()
    redis_server.start()  # empty again, same port
    # The pool's one connection is dead; it is replaced when taken, not failed on.
    assert await policy.call_custom_event("incr") == 1


async def test_password_option_authenticates_and_is_never_shown(
    tmp_path: Path, redis_server: RedisServer, raw: Any
) -> None:
    from bench.common.redis_server import free_port

    await raw.config_set("requirepass", "s3cret-pw")
    dead = free_port()
    urls = {
        "live": f"redis://127.0.0.1:{redis_server.port}/",
        "dead": f"redis://:s3cret-pw@127.0.0.1:{dead}/",
    }
    marks = await run_lua(
        tmp_path,
        """
        local url = kumo.test.value().live
        mark(redis.open({ node = url, password = 's3cret-pw' }):query('ping'))
        local with_url = url:gsub('redis://', 'redis://:s3cret-pw@')
        mark(redis.open({ node = with_url }):query('ping'))
        local ok, err = pcall(function()
          return redis.open({ node = url, password = 'wrong' }):query('ping')
        end)
        mark({ ok, tostring(err) })
        local ok, err = pcall(function()
          return redis.open({ node = kumo.test.value().dead }):query('ping')
        end)
        mark(tostring(err))
        """,
        urls,
    )
    await raw.execute_command("AUTH", "s3cret-pw")
    await raw.config_set("requirepass", "")
    assert marks[0] == marks[1] == "PONG"
    assert marks[2][0] is False
    assert "invalid username-password pair" in marks[2][1], marks[2][1]
    # An error naming a node (here: nothing listens) shows its URL without the password.
    assert f"redis://:***@127.0.0.1:{dead}/: " in marks[3], marks[3]
    assert "s3cret-pw" not in marks[3]
