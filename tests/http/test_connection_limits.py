"""Slow, silent and too many HTTP connections (issue 14, #4), over raw sockets; and the
rate limit on failed HTTP Basic authentications."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time

from kumocore import hookimpl
from tests.http.conftest import HttpEnv, StartHttp

UNTRUSTED = "127.0.0.5"


async def connect(env: HttpEnv, source: str = UNTRUSTED) -> tuple[
        asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = env.listener.address
    return await asyncio.open_connection(host, port, local_addr=(source, 0))


async def read_until_closed(reader: asyncio.StreamReader, limit: float = 15.0) -> bytes:
    with contextlib.suppress(ConnectionError):
        return await asyncio.wait_for(reader.read(), limit)
    return b""


def json_body(response: bytes) -> dict[str, str]:
    return json.loads(response.partition(b"\r\n\r\n")[2])  # type: ignore[no-any-return]


async def test_slowloris_headers_get_408_and_are_closed_after_header_timeout(
    start_http: StartHttp,
) -> None:
    env = await start_http(header_timeout="1s", keepalive_timeout="30s")
    reader, writer = await connect(env)
    request = b"GET /api/check-liveness/v1 HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
    started = time.monotonic()
    answer = asyncio.ensure_future(read_until_closed(reader, 10))
    for byte in request:  # one byte every 0.1 s: far slower than the deadline allows
        if answer.done() or time.monotonic() - started > 10:
            break
        with contextlib.suppress(ConnectionError):
            writer.write(bytes([byte]))
            await writer.drain()
        await asyncio.sleep(0.1)
    data = await answer
    closed_after = time.monotonic() - started
    writer.close()
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert "header_timeout" in json_body(data)["error"]
    assert closed_after < 5, closed_after
    assert env.listener.guard.stats()["closed_slow_headers"] == 1


async def test_silent_connection_is_closed_after_keepalive_timeout(
    start_http: StartHttp,
) -> None:
    env = await start_http(keepalive_timeout="1s")
    reader, writer = await connect(env)
    started = time.monotonic()
    data = await read_until_closed(reader, 10)
    seconds = time.monotonic() - started
    writer.close()
    assert data == b"" and 0.8 < seconds < 5, seconds
    await asyncio.sleep(0.05)
    assert env.listener.guard.stats()["open"] == 0


async def test_idle_keepalive_connection_is_closed_after_keepalive_timeout(
    start_http: StartHttp,
) -> None:
    env = await start_http(keepalive_timeout="1s")
    reader, writer = await connect(env)
    writer.write(b"GET /api/check-liveness/v1 HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    started = time.monotonic()
    data = await read_until_closed(reader, 10)
    seconds = time.monotonic() - started
    writer.close()
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"OK")
    assert 0.8 < seconds < 5, seconds


async def test_connections_beyond_the_per_peer_cap_get_503(start_http: StartHttp) -> None:
    env = await start_http(max_connections_per_peer=3)
    held = [await connect(env) for _ in range(3)]
    reader, writer = await connect(env)
    data = await read_until_closed(reader, 5)
    writer.close()
    assert data.startswith(b"HTTP/1.1 503 "), data
    assert "max_connections_per_peer 3" in json_body(data)["error"]
    # another peer is not affected by this one's connections
    status, text, _ = await env.request("GET", "/api/check-liveness/v1", source="127.0.0.6")
    assert (status, text) == (200, "OK")
    for _, w in held:
        w.close()
    await asyncio.sleep(0.1)
    assert env.listener.guard.stats()["open"] == 0
    status, _, _ = await env.request("GET", "/api/check-liveness/v1", source=UNTRUSTED)
    assert status == 200


async def test_connections_beyond_the_listener_cap_get_503(start_http: StartHttp) -> None:
    env = await start_http(max_connections=4)
    held = [await connect(env, f"127.0.0.{n}") for n in range(10, 14)]
    reader, writer = await connect(env, "127.0.0.20")
    data = await read_until_closed(reader, 5)
    writer.close()
    assert data.startswith(b"HTTP/1.1 503 "), data
    assert "max_connections 4" in json_body(data)["error"]
    for _, w in held:
        w.close()


async def test_untrusted_peers_cannot_take_the_connections_kept_for_trusted_hosts(
    start_http: StartHttp,
) -> None:
    # 16 connections, the last 2 (an eighth) kept for trusted_hosts (127.0.0.1): many
    # untrusted addresses holding every connection locked the operator out.
    env = await start_http(max_connections=16)
    held = [await connect(env, f"127.0.0.{n}") for n in range(10, 24)]
    reader, writer = await connect(env, "127.0.0.30")
    data = await read_until_closed(reader, 5)
    writer.close()
    assert data.startswith(b"HTTP/1.1 503 "), data
    assert "max_connections 16" in json_body(data)["error"]
    status, text, _ = await env.request("GET", "/api/check-liveness/v1")
    assert (status, text) == (200, "OK")
    for _, w in held:
        w.close()


async def test_request_body_slower_than_request_body_timeout_gets_408(
    start_http: StartHttp,
) -> None:
    env = await start_http(request_body_timeout="1s")
    reader, writer = await connect(env, "127.0.0.1")
    writer.write(b"POST /api/inject/v1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"env")
    await writer.drain()
    started = time.monotonic()
    data = await read_until_closed(reader, 10)
    writer.close()
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert "request_body_timeout" in json_body(data)["error"]
    assert time.monotonic() - started < 5
    assert env.messages == []


class CountingAuth:
    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def kumo_http_server_validate_auth_basic(self, user: str, password: str) -> bool:
        self.calls += 1
        return password == "right"


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"u:{password}".encode()).decode()}


async def test_basic_auth_failures_beyond_the_limit_get_429_with_retry_after(
    start_http: StartHttp,
) -> None:
    policy = CountingAuth()
    env = await start_http(policy, auth_failure_limit=3, auth_failure_window="30s")
    body = {"envelope_sender": "a@b.example", "recipients": [{"email": "c@d.example"}],
            "content": "Subject: x\n\ny"}
    for _ in range(3):
        status, _, _ = await env.request("POST", "/api/inject/v1", json=body,
                                         source=UNTRUSTED, headers=basic("guess"))
        assert status == 401
    status, payload, response = await env.request(
        "POST", "/api/inject/v1", json=body, source=UNTRUSTED, headers=basic("right"))
    assert status == 429, payload
    assert 1 <= int(response.headers["Retry-After"]) <= 30
    assert "too many failed HTTP Basic authentications" in payload["error"]
    assert policy.calls == 3  # the policy is not asked while the peer is blocked
    # another peer is not blocked
    status, _, _ = await env.request("POST", "/api/inject/v1", json=body,
                                     source="127.0.0.6", headers=basic("right"))
    assert status == 200


def test_max_connections_keeps_half_the_descriptor_limit_for_smtp_and_the_spool() -> None:
    from kumocore.http.connections import connection_cap

    assert connection_cap(1024, fd_soft_limit=1024) == 512
    assert connection_cap(100, fd_soft_limit=1024) == 100
    assert connection_cap(1024, fd_soft_limit=65536) == 1024
