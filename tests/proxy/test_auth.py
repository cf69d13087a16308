"""RFC 1929 authentication decided by the policy's proxy_server_auth_rfc1929 event,
with KumoMTA's own proxy_with_auth.lua where the mirror has it."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from tests.proxy.support import (
    Stream,
    bind_and_connect,
    closed,
    connect,
    echo_server,
    greeting,
    proxy_listener,
    proxy_port,
    running,
    write_policy,
)

MIRROR = Path("/work/.mirror/KumoCorp+kumomta/repo")
KUMOMTA_POLICY = "crates/integration-tests/proxy_with_auth.lua"


def credentials(username: str, password: str) -> bytes:
    user, secret = username.encode(), password.encode()
    return bytes((1, len(user))) + user + bytes((len(secret),)) + secret


async def login(port: int, username: str, password: str) -> tuple[Stream, bytes]:
    """Offer methods 0 and 2, send the credentials: the client and the auth status."""
    reader, writer = await connect(port)
    writer.write(greeting(0, 2))
    assert await asyncio.wait_for(reader.readexactly(2), 10) == b"\x05\x02"
    writer.write(credentials(username, password))
    return (reader, writer), await asyncio.wait_for(reader.readexactly(2), 10)


@pytest.fixture
def kumomta_policy(tmp_path: Path) -> Path:
    """KumoMTA's integration-test policy, read from the mirror (it is KumoMTA's file)."""
    try:
        text = subprocess.run(["git", "-C", str(MIRROR), "show", f"HEAD:{KUMOMTA_POLICY}"],
                              capture_output=True, check=True, text=True).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("KumoMTA's mirror (with proxy_with_auth.lua) is not on this machine")
    policy = tmp_path / "proxy_with_auth.lua"
    policy.write_text(text)
    return policy


async def test_kumomta_auth_policy_refuses_bad_and_accepts_good_credentials(
    kumomta_policy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUMO_PROXY_REQUIRE_AUTH", "true")
    monkeypatch.setenv("KUMO_PROXY_AUTH_USERNAME", "mta")
    monkeypatch.setenv("KUMO_PROXY_AUTH_PASSWORD", "s3cret")
    async with echo_server() as echo, running(kumomta_policy) as d:
        port = proxy_port(d)
        refused, status = await login(port, "mta", "wrong")
        assert status == b"\x01\x01"
        assert await closed(refused[0])
        # require_auth: a client offering only "no authentication" gets 0xFF.
        plain_reader, plain_writer = await connect(port)
        plain_writer.write(greeting(0))
        assert await asyncio.wait_for(plain_reader.readexactly(2), 10) == b"\x05\xff"
        assert await closed(plain_reader)
        stream, status = await login(port, "mta", "s3cret")
        assert status == b"\x01\x00"
        assert d.listeners[0].metrics.counts["proxy_connections_failed"] == 2
        # Authenticated, the session goes on to its requests.
        await bind_and_connect(stream, "127.0.10.6", echo.port)
        assert echo.peers[0][0] == "127.0.10.6"


AUTH_HANDLER = """
kumo.on('proxy_server_auth_rfc1929', function(username, password, conn_meta)
  seen = conn_meta
  if username == 'groups' then
    return { identities = { { identity = username, context = 'ProxyAuthRfc1929' } },
             groups = { 'proxy-users' } }
  elseif username == 'empty' then
    return { identities = {} }
  elseif username == 'boom' then
    error('auth backend down')
  end
  return conn_meta.peer_address:match('^127%.0%.0%.5:') ~= nil
     and conn_meta.local_address:match('^127%.0%.0%.1:') ~= nil
end)
"""


@pytest.mark.parametrize(
    ("username", "status"),
    [("anyone", b"\x01\x00"), ("groups", b"\x01\x00"), ("empty", b"\x01\x01"),
     ("boom", b"\x01\x01")],
)  # fmt: skip
async def test_auth_event_answers_true_authinfo_or_refuses(
    tmp_path: Path, username: str, status: bytes
) -> None:
    """conn_meta carries the peer and local addresses; an AuthInfo needs an identity; a
    failing handler refuses."""
    policy = write_policy(tmp_path, proxy_listener("require_auth = true"), AUTH_HANDLER)
    async with running(policy) as d:
        _, answer = await login(proxy_port(d), username, "pw")
        assert answer == status


async def test_offered_password_method_is_authenticated_even_when_not_required(
    tmp_path: Path,
) -> None:
    extra = "kumo.on('proxy_server_auth_rfc1929', function(u, p, m) return p == 'ok' end)\n"
    async with running(write_policy(tmp_path, proxy_listener(), extra)) as d:
        _, answer = await login(proxy_port(d), "u", "bad")
        assert answer == b"\x01\x01"


async def test_without_an_auth_handler_credentials_are_refused(tmp_path: Path) -> None:
    async with running(write_policy(tmp_path, proxy_listener("require_auth = true"))) as d:
        _, answer = await login(proxy_port(d), "u", "p")
        assert answer == b"\x01\x01"


async def test_bad_auth_version_closes_the_connection(tmp_path: Path) -> None:
    async with running(write_policy(tmp_path, proxy_listener("require_auth = true"))) as d:
        reader, writer = await connect(proxy_port(d))
        writer.write(greeting(2))
        assert await asyncio.wait_for(reader.readexactly(2), 10) == b"\x05\x02"
        writer.write(b"\x05\xff" + b"x" * 1000)
        assert await closed(reader)
