"""``kumocore proxy validate`` / ``serve`` (both command-line forms) and what a proxy
policy may and may not do."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.common.ports import free_port
from kumocore.errors import ConfigError, PolicyError
from kumocore.node.runtime import Runtime
from kumocore.proxy.cli import legacy_policy
from kumocore.proxy.daemon import ProxyDaemon
from tests.proxy.support import CLIENT_ADDRESS, no_auth, proxy_listener, write_policy

KUMOCORE = Path(sys.executable).with_name("kumocore")


def _kumocore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(KUMOCORE), "proxy", *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_validate_sums_up_a_good_policy_and_nothing_listens(tmp_path: Path) -> None:
    port, http = free_port("127.0.0.1"), free_port("127.0.0.1")
    policy = write_policy(
        tmp_path,
        f"proxy.start_proxy_listener {{ listen = '127.0.0.1:{port}', timeout = '5s' }}\n"
        f"proxy.start_http_listener {{ listen = '127.0.0.1:{http}' }}",
    )
    result = _kumocore("validate", "--proxy-config", str(policy))
    assert result.returncode == 0, result.stderr
    assert f"proxy listeners on 127.0.0.1:{port}; HTTP listeners: 127.0.0.1:{http}" in result.stdout
    for taken in (port, http):
        with socket.socket() as probe:  # validate listened on neither
            probe.bind(("127.0.0.1", taken))


def test_validate_names_an_unknown_option_and_fails(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, proxy_listener("use_splise = false"))
    result = _kumocore("validate", "--proxy-config", str(policy))
    assert result.returncode == 1
    assert result.stderr.startswith("kumocore proxy validate: ")
    assert "unknown key 'use_splise'" in result.stderr
    assert "did you mean 'use_splice'?" in result.stderr


def test_serve_refuses_mixing_the_config_file_and_the_legacy_options(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, proxy_listener())
    result = _kumocore("serve", "--proxy-config", str(policy), "--timeout-seconds", "5")
    assert result.returncode == 2
    assert "--proxy-config cannot be used with --listen" in result.stderr
    assert _kumocore("serve").returncode == 2


def test_legacy_options_make_kumomtas_policy() -> None:
    text = legacy_policy(["127.0.0.1:1080", "[::1]:1080"], 7, no_splice=True)
    assert text.count("proxy.start_proxy_listener {") == 2
    assert "listen = '[::1]:1080'," in text
    assert "timeout = '7 seconds'," in text
    assert "use_splice = false," in text
    assert "listen = 'a\\'b'," in legacy_policy(["a'b"], 60, no_splice=False)


def test_serve_legacy_listen_serves_socks5_with_its_timeout() -> None:
    port = free_port("127.0.0.1")
    process = subprocess.Popen(
        [str(KUMOCORE), "proxy", "serve", "--listen", f"127.0.0.1:{port}",
         "--timeout-seconds", "1", "--no-splice"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client = socket.create_connection(("127.0.0.1", port), 1,
                                                  source_address=(CLIENT_ADDRESS, 0))  # fmt: skip
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        with client:
            client.sendall(b"\x05\x01\x00")
            assert client.recv(2) == b"\x05\x00"
            started = time.monotonic()
            client.settimeout(10)
            assert client.recv(10) == b""  # no request within --timeout-seconds
            assert 0.9 <= time.monotonic() - started < 5
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 0, output


async def test_require_proxy_fails_in_a_node_policy_with_where_it_works(tmp_path: Path) -> None:
    policy = tmp_path / "node.lua"
    policy.write_text("local proxy = require 'proxy'\n")
    with pytest.raises(PolicyError, match="module 'proxy' is only available to the proxy "
                       "policy run by `kumocore proxy serve`"):  # fmt: skip
        await Runtime().load(policy)


async def test_a_policy_without_a_proxy_listener_is_refused(tmp_path: Path) -> None:
    policy = tmp_path / "empty.lua"
    policy.write_text("local kumo = require 'kumo'\n")
    with pytest.raises(ConfigError, match="registers no proxy_init handler"):
        await ProxyDaemon.load(str(policy))


async def test_http_listener_option_kumoproxy_does_not_take_is_refused(tmp_path: Path) -> None:
    http = "proxy.start_http_listener { listen = '127.0.0.1:0', max_connections = 5 }"
    listener = f"{proxy_listener()}\n{http}"
    with pytest.raises(PolicyError, match="unknown option 'max_connections'"):
        await ProxyDaemon.load(str(write_policy(tmp_path, listener)))


async def test_bad_option_values_are_refused_with_the_key(tmp_path: Path) -> None:
    bad = proxy_listener("tcp_keepalive = { retries = 'many' }")
    with pytest.raises(PolicyError, match=r"'tcp_keepalive\.retries'"):
        await ProxyDaemon.load(str(write_policy(tmp_path, bad)))


async def test_kumo_start_proxy_listener_alias_works(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, "kumo.start_proxy_listener { listen = '127.0.0.1:0' }")
    daemon = await ProxyDaemon.load(str(policy))
    try:
        await daemon.start()
        address = daemon.listeners[0].address
        assert address is not None
        reader, writer = await asyncio.open_connection(*address, local_addr=(CLIENT_ADDRESS, 0))
        await no_auth((reader, writer))
        writer.close()
        await writer.wait_closed()
    finally:
        await daemon.close()


async def test_keepalive_time_past_linuxs_range_is_refused_at_load(tmp_path: Path) -> None:
    bad = proxy_listener("tcp_keepalive = { time = '1 day' }")
    with pytest.raises(PolicyError, match=r"'tcp_keepalive\.time'.*1 to 32767 seconds"):
        await ProxyDaemon.load(str(write_policy(tmp_path, bad)))
