"""Egress through real proxies: HAProxy (PROXY protocol v2, ``usesrc clientip``) and
Dante (SOCKS5), bound to 127.0.0.x; the sink must see the proxy's source address and
the log records must name it, the proxy server and the protocol."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import pytest

from tests.queue.harness import Bench
from tests.support.proxies import DANTED, HAPROXY, dante_socks5, haproxy_forward_proxy

POOL = {"p": [{"name": "proxied"}]}

needs_haproxy = pytest.mark.skipif(not os.path.exists(HAPROXY), reason="haproxy not installed")
needs_dante = pytest.mark.skipif(not os.path.exists(DANTED), reason="dante-server not installed")


async def _bench_with_source(make_bench: Any, **source: Any) -> Bench:
    bench: Bench = await make_bench(queue={"egress_pool": "p"}, pools=POOL)
    bench.runtime.kumo.define_egress_source(name="proxied", ehlo_domain="mta.test", **source)
    return bench


@needs_haproxy
@pytest.mark.skipif(os.geteuid() != 0,
                    reason="HAProxy's 'usesrc clientip' needs CAP_NET_ADMIN (root)")
async def test_haproxy_source_address_is_what_the_sink_sees_and_what_is_logged(
    make_bench: Any,
) -> None:
    with haproxy_forward_proxy("127.0.0.30") as port:
        bench = await _bench_with_source(
            make_bench, ha_proxy_server=f"127.0.0.30:{port}",
            ha_proxy_source_address="127.0.10.31")
        await bench.inject("rcpt@example.com")
        received = await bench.sink.wait_for(1)
        records = await bench.wait_for_records("Delivery", 1)
    assert received[0].source_ip == "127.0.10.31"
    assert received[0].ehlo == "mta.test"
    assert records[0]["source_address"] == {
        "address": "127.0.10.31:0", "server": f"127.0.0.30:{port}", "protocol": "haproxy"}


@needs_dante
async def test_socks5_connection_leaves_from_the_proxy_source_address(make_bench: Any) -> None:
    with dante_socks5("127.0.0.32", "127.0.10.33") as port:
        bench = await _bench_with_source(
            make_bench, socks5_proxy_server=f"127.0.0.32:{port}",
            socks5_proxy_source_address="127.0.10.33", socks5_proxy_bind_source=False)
        await bench.inject("rcpt@example.com")
        received = await bench.sink.wait_for(1)
        records = await bench.wait_for_records("Delivery", 1)
    assert received[0].source_ip == "127.0.10.33"
    source = records[0]["source_address"]
    assert source["address"].startswith("127.0.10.33:")
    assert (source["server"], source["protocol"]) == (f"127.0.0.32:{port}", "socks5")


@needs_dante
async def test_socks5_proxy_leaving_from_another_address_is_refused_not_used(
    make_bench: Any,
) -> None:
    # The proxy sends from 127.0.10.35; the source says 127.0.10.34: no mail may leave
    # from an address the operator did not choose.
    with dante_socks5("127.0.0.34", "127.0.10.35") as port:
        bench = await _bench_with_source(
            make_bench, socks5_proxy_server=f"127.0.0.34:{port}",
            socks5_proxy_source_address="127.0.10.34", socks5_proxy_bind_source=False)
        await bench.inject("rcpt@example.com")
        records = await bench.wait_for_records("TransientFailure", 1)
    assert bench.sink.messages == []
    text = records[0]["response"]["content"]
    assert "connected from 127.0.10.35, not from socks5_proxy_source_address 127.0.10.34" in text


SOCKS_USER = "kumocore-socks-test"


def _ensure_system_user(password: str) -> None:
    """Dante checks user names and passwords against the system's accounts."""
    if subprocess.run(["id", SOCKS_USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        SOCKS_USER], check=True)
    subprocess.run(["chpasswd"], input=f"{SOCKS_USER}:{password}".encode(), check=True)


@needs_dante
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd"),
                    reason="creating the proxy's account needs root")
async def test_socks5_username_and_password_authenticate_and_a_wrong_password_fails(
    make_bench: Any,
) -> None:
    _ensure_system_user("s3cret-pass")
    with dante_socks5("127.0.0.36", "127.0.10.36", username=SOCKS_USER) as port:
        bench = await _bench_with_source(
            make_bench, socks5_proxy_server=f"127.0.0.36:{port}",
            socks5_proxy_source_address="127.0.10.36", socks5_proxy_username=SOCKS_USER,
            socks5_proxy_bind_source=False,
            socks5_proxy_password={"key_data": "wrong"})
        await bench.inject("first@example.com")
        failed = await bench.wait_for_records("TransientFailure", 1)
        assert "SOCKS5 proxy refused the user name or password" in \
            failed[0]["response"]["content"]
        bench2 = await _bench_with_source(
            make_bench, socks5_proxy_server=f"127.0.0.36:{port}",
            socks5_proxy_source_address="127.0.10.36", socks5_proxy_username=SOCKS_USER,
            socks5_proxy_bind_source=False,
            socks5_proxy_password={"key_data": "s3cret-pass"})
        await bench2.inject("second@example.com")
        received = await bench2.sink.wait_for(1)
    assert received[0].recipient == "second@example.com"
    assert received[0].source_ip == "127.0.10.36"


@pytest.mark.parametrize(("options", "message"), [
    ({"ha_proxy_server": "127.0.0.30:5000"}, "ha_proxy_server needs ha_proxy_source_address"),
    ({"socks5_proxy_source_address": "127.0.10.1"},
     "socks5_proxy_source_address needs socks5_proxy_server"),
    ({"ha_proxy_server": "127.0.0.30:5000", "ha_proxy_source_address": "127.0.10.1",
      "socks5_proxy_server": "127.0.0.31:1080", "socks5_proxy_source_address": "127.0.10.1"},
     "both an HAProxy and a SOCKS5 proxy"),
])
def test_half_configured_proxies_are_refused_at_load(options: dict[str, str], message: str) -> None:
    from kumocore.config import EgressSource
    from kumocore.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        EgressSource.from_options({"name": "s", **options})


def test_enable_dane_loads() -> None:
    from kumocore.config import EgressPathConfig

    # enable_dane is implemented (tests/queue/test_dane.py); kumo.make_egress_path refuses
    # it without a validating resolver.
    assert EgressPathConfig.from_options({"enable_dane": True}).enable_dane is True
    assert EgressPathConfig.from_options({"enable_dane": False}).enable_dane is False
