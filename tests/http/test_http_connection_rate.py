"""``max_connection_rate_per_peer`` on the HTTP listener: new connections per client as a
token bucket (kumocore.reception.connection_rates), ``trusted_hosts`` exempt, checked
when the connection is admitted (before any TLS handshake)."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from kumocore.config import HttpListenerConfig
from kumocore.errors import ConfigError
from tests.http.conftest import HttpEnv, StartHttp

UNTRUSTED = "127.0.0.5"


async def answer_of(env: HttpEnv, source: str = UNTRUSTED, request: bytes = (
        b"GET /api/check-liveness/v1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Connection: close\r\n\r\n")) -> bytes:  # fmt: skip
    host, port = env.listener.address
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    try:
        with contextlib.suppress(ConnectionError):
            writer.write(request)
        with contextlib.suppress(ConnectionError):
            return await asyncio.wait_for(reader.read(), 10)
        return b""
    finally:
        writer.close()


async def test_connections_over_the_rate_get_429_naming_the_option(
    start_http: StartHttp,
) -> None:
    env = await start_http(max_connection_rate_per_peer="3/m")
    answers = [await answer_of(env) for _ in range(5)]
    assert [a.split(b" ", 2)[1] for a in answers] == [b"200"] * 3 + [b"429"] * 2
    error = json.loads(answers[-1].partition(b"\r\n\r\n")[2])["error"]
    assert error == (f"too many connections from {UNTRUSTED} "
                     "(max_connection_rate_per_peer 3/m)")
    assert env.listener.guard.stats()["refused"] == 2


async def test_trusted_hosts_are_not_charged_to_the_rate(start_http: StartHttp) -> None:
    env = await start_http(max_connection_rate_per_peer="2/m")
    answers = [await answer_of(env, source="127.0.0.1") for _ in range(6)]
    assert all(a.startswith(b"HTTP/1.1 200 ") for a in answers), answers
    assert env.listener.guard.stats()["refused"] == 0


async def test_the_rate_is_off_by_default(start_http: StartHttp) -> None:
    env = await start_http()
    assert env.listener.guard.rate is None
    answers = [await answer_of(env) for _ in range(30)]
    assert not any(b" 429 " in a for a in answers)


async def test_over_tls_a_connection_over_the_rate_is_closed_before_a_handshake(
    start_http: StartHttp,
) -> None:
    env = await start_http(use_tls=True, max_connection_rate_per_peer="2/m")
    guard = env.listener.guard
    host, port = env.listener.address
    closed = []
    for _ in range(4):  # no ClientHello: an admitted one waits for it, a refused one not
        reader, writer = await asyncio.open_connection(host, port, local_addr=(UNTRUSTED, 0))
        try:
            closed.append(await asyncio.wait_for(reader.read(), 0.5) == b"")
        except TimeoutError:
            closed.append(False)
        except ConnectionError:
            closed.append(True)
        writer.close()
    assert closed == [False, False, True, True]
    assert guard.stats()["refused"] == 2


@pytest.mark.parametrize("value", ["fast", "0/s", "-1/m", 12])
def test_a_bad_max_connection_rate_per_peer_is_refused_at_load(value: object) -> None:
    with pytest.raises(ConfigError, match="max_connection_rate_per_peer"):
        HttpListenerConfig.from_options({"max_connection_rate_per_peer": value})
