"""``kumo.aaa.configure_acct_log``: authentication and authorization records, in zstd
segments, from a Lua policy on a real listener; its options and bounds."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import kumocore_lua_policy as lua_policy
import pytest
import zstandard

from kumocore import ConfigError, PolicyError
from kumocore.config import HttpListenerConfig
from kumocore.http.acl_acct import AcctLog
from kumocore.http.server import start_http_listener
from tests.http.conftest import HttpEnv
from tests.plugins.lua_policy.support import load
from tests.reception.harness import HOSTNAME, make_reception

UNTRUSTED = "127.0.0.5"
POLICY = r"""
local kumo = require 'kumo'
kumo.on('pre_init', function()
  kumo.aaa.configure_acct_log { log_dir = 'LOG_DIR', log_authz_allow = ALLOW }
end)
kumo.on('http_server_validate_auth_basic', function(user, password)
  return password == 'pw'
end)
"""


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def read_records(directory: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted(directory.iterdir()):
        # The open segment's frame is not ended yet: decode what was flushed.
        data = zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())
        records += [json.loads(line) for line in data.splitlines()]
    return records


Start = Callable[[bool], Any]


@pytest.fixture
async def acct_http(tmp_path: Path) -> AsyncIterator[Start]:
    envs: list[HttpEnv] = []

    async def start(allow: bool) -> HttpEnv:
        policy = tmp_path / "policy.lua"
        source = POLICY.replace("LOG_DIR", str(tmp_path / "acct"))
        policy.write_text(source.replace("ALLOW", "true" if allow else "false"))
        reception = await make_reception(
            policy_file=str(policy), plugins=(("lua_policy", lua_policy.LuaPolicyPlugin()),)
        )
        config = HttpListenerConfig.from_options({"listen": "127.0.0.1:0", "hostname": HOSTNAME})
        env = HttpEnv(await start_http_listener(reception.runtime, config), reception)
        envs.append(env)
        return env

    yield start
    for env in envs:
        await env.listener.close()
        await env.reception.close()


async def test_records_authentication_and_authorization(acct_http: Start, tmp_path: Path) -> None:
    env = await acct_http(True)
    await env.request("GET", "/metrics")
    await env.request("GET", "/metrics", source=UNTRUSTED, headers=basic("eve", "guess"))
    await env.request("GET", "/metrics", source=UNTRUSTED, headers=basic("bob", "pw"))
    acct = env.reception.runtime.http_access.acct
    assert acct is not None
    await acct.drain()
    records = [
        r
        for r in read_records(tmp_path / "acct")
        if "/metrics" in str(r) or r["type"] == "Authentication"
    ]
    host, port = env.listener.address
    allow = next(
        r
        for r in records
        if r["type"] == "Authorization"
        and r["access"] == "Allow"
        and r["target_resource"] == f"http_listener/{host}:{port}/metrics"
    )
    assert allow["matching_resource"] == "http_listener/*/metrics"
    assert allow["privilege"] == "GET"
    assert allow["auth_info"] == {
        "peer_address": "127.0.0.1",
        "identities": [],
        "groups": ["kumomta:http-listener-trusted-ip"],
    }
    assert allow["considered_resources"] == [
        f"http_listener/{host}:{port}/metrics",
        f"http_listener/{host}:{port}",
    ]
    authn = [
        (r["attempted_identity"]["identity"], r["success"])
        for r in records
        if r["type"] == "Authentication"
    ]
    assert authn == [("eve", False), ("bob", True)]
    deny = [r for r in records if r["type"] == "Authorization" and r["access"] == "Deny"]
    assert [d["auth_info"]["identities"] for d in deny] == [
        [{"identity": "bob", "context": "HttpBasicAuth"}]
    ]
    assert deny[0]["rule"] is None and deny[0]["matching_resource"] is None


async def test_log_authz_allow_false_leaves_allowed_checks_out(
    acct_http: Start, tmp_path: Path
) -> None:
    env = await acct_http(False)
    await env.request("GET", "/metrics")
    await env.request("GET", "/metrics", source=UNTRUSTED)
    acct = env.reception.runtime.http_access.acct
    assert acct is not None
    await acct.drain()
    access = {r["access"] for r in read_records(tmp_path / "acct") if r["type"] == "Authorization"}
    assert access == {"Deny"}


async def test_back_pressure_bounds_the_waiting_lines(tmp_path: Path) -> None:
    acct = AcctLog({"log_dir": str(tmp_path / "acct"), "back_pressure": 3})
    for i in range(5):  # no await in between: the writer has not run yet
        acct.submit({"n": i})
    assert (len(acct.queue), acct.dropped) == (3, 2)
    await acct.drain()
    assert [r["n"] for r in read_records(tmp_path / "acct")] == [0, 1, 2]
    acct.close()


async def test_max_file_size_starts_a_new_segment(tmp_path: Path) -> None:
    acct = AcctLog({"log_dir": str(tmp_path / "acct"), "max_file_size": 20})
    for i in range(3):
        acct.submit({"n": i, "pad": "x" * 20})
    await acct.drain()
    acct.close()
    files = sorted((tmp_path / "acct").iterdir())
    assert len(files) == 3
    assert [r["n"] for r in read_records(tmp_path / "acct")] == [0, 1, 2]
    for path in files:  # each closed segment is a whole zstd frame
        reader = zstandard.ZstdDecompressor().stream_reader(path.read_bytes())
        assert reader.read().count(b"\n") == 1


def test_options_are_checked() -> None:
    for options in (
        {},
        {"log_dir": "/x", "bogus": 1},
        {"log_dir": "/x", "log_authn_ok": 1},
        {"log_dir": "/x", "compression_level": 22},
    ):
        with pytest.raises(ConfigError):
            AcctLog(options)


async def test_configure_acct_log_twice_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="only once"):
        await load(
            tmp_path,
            f"""
            local kumo = require 'kumo'
            kumo.aaa.configure_acct_log {{ log_dir = '{tmp_path}/a' }}
            kumo.aaa.configure_acct_log {{ log_dir = '{tmp_path}/b' }}
        """,
        )
