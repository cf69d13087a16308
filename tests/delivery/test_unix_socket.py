"""Delivery to a unix-domain socket named in ``mx_list`` (KumoMTA's syntax: an absolute
path, bare or in ``[]``, or the ``addr`` of a ``{ name, addr }`` entry), here to an LMTP
server with ``use_lmtp``: no DNS lookup, no source address, and the log records name the
socket as KumoMTA does (``peer_address`` ``{name, addr}``, ``source_address``
``<unbound unix domain>``)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kumocore.config import QueueConfig
from kumocore.dns.mx import parse_mx_list_entry
from kumocore.dns.unix_path import SUN_PATH_MAX
from kumocore.errors import ConfigError
from kumocore.trace.bus import CLIENT_TRACE, Subscriber
from tests.support.lmtp_unix import UnixLmtpServer


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: its paths can be too long for sun_path on their own.
    with tempfile.TemporaryDirectory(prefix="kc-lmtp-") as name:
        yield Path(name)


def _route(entry: Any) -> dict[str, Any]:
    return {"protocol": {"smtp": {"mx_list": [entry]}}}


#: As an operator would run it: loopback prohibited, which a socket path is not.
PATH = {"use_lmtp": True, "prohibited_hosts": ["127.0.0.0/8", "::1"]}


async def test_lmtp_over_a_unix_socket_gives_each_recipient_its_own_outcome(
    farm_bench: Any, socket_dir: Path
) -> None:
    sock = socket_dir / "lmtp.sock"
    tracer = CLIENT_TRACE.subscribe(Subscriber(lambda meta: True))
    try:
        async with UnixLmtpServer(sock) as server:
            records = await _deliver_three(farm_bench, sock)
    finally:
        CLIENT_TRACE.unsubscribe(tracer)
    delivery, bounce, deferred = records
    assert delivery["recipient"] == "someone@nowhere.invalid"
    assert delivery["response"]["code"] == 250
    assert bounce["recipient"] == "nouser@nowhere.invalid"
    assert bounce["response"]["code"] == 550
    assert bounce["response"]["enhanced_code"] == {"class": 5, "subject": 1, "detail": 1}
    assert deferred["recipient"] == "full@nowhere.invalid"
    assert deferred["response"]["code"] == 451 and deferred["response"]["command"] == "."
    for record in (delivery, bounce, deferred):
        assert record["peer_address"] == {"name": str(sock), "addr": str(sock)}
        assert record["source_address"] == {"address": "<unbound unix domain>"}
        assert record["delivery_protocol"] == "ESMTP"
    assert server.delivered == ["someone@nowhere.invalid"]
    assert "LHLO" in server.events and "EHLO" not in server.events
    # The delivery trace shows the socket as KumoMTA's does.
    connected = [e.conn_meta for e in tracer.queue if e.kind == "Connected"]
    begun = [e.conn_meta for e in tracer.queue if e.kind == "BeginSession"]
    assert connected and begun
    for meta in connected:
        assert meta is not None
        assert meta["mx_host"] == meta["mx_address"] == str(sock)
        assert meta["source_address"] == "<unbound unix domain>"
    plan = {"Addresses": [{"name": str(sock), "addr": str(sock)}]}
    assert all(meta is not None and meta["mx_plan"] == plan for meta in begun)


async def _deliver_three(farm_bench: Any, sock: Path) -> list[dict[str, Any]]:
    """A Delivery, a Bounce and a TransientFailure record, from one LMTP session."""
    bench = await farm_bench(25, path=PATH, queue=_route(str(sock)))
    for local in ("someone", "nouser", "full"):
        # nowhere.invalid is in no DNS: any lookup would fail the attempt
        await bench.inject(f"{local}@nowhere.invalid", queue="lmtp.invalid")
    return [
        (await bench.wait_for_records(kind, 1))[0]
        for kind in ("Delivery", "Bounce", "TransientFailure")
    ]


async def test_a_bracketed_path_and_a_name_addr_entry_reach_the_socket_too(
    farm_bench: Any, socket_dir: Path
) -> None:
    sock = socket_dir / "lmtp.sock"
    async with UnixLmtpServer(sock) as server:
        bracketed = await farm_bench(25, path=PATH, queue=_route(f"[{sock}]"))
        await bracketed.inject("one@nowhere.invalid", queue="one.invalid")
        (first,) = await bracketed.wait_for_records("Delivery", 1)
        named = await farm_bench(25, path=PATH, queue=_route({"name": "lmtp", "addr": str(sock)}))
        await named.inject("two@nowhere.invalid", queue="two.invalid")
        (second,) = await named.wait_for_records("Delivery", 1)
    assert first["peer_address"] == {"name": f"[{sock}]", "addr": str(sock)}
    assert second["peer_address"] == {"name": "lmtp", "addr": str(sock)}
    assert server.delivered == ["one@nowhere.invalid", "two@nowhere.invalid"]


async def test_a_socket_path_that_does_not_exist_is_a_transient_failure_naming_it(
    farm_bench: Any, socket_dir: Path
) -> None:
    missing = socket_dir / "absent.sock"
    bench = await farm_bench(25, path=PATH, queue=_route(str(missing)))
    await bench.inject("someone@nowhere.invalid", queue="absent.invalid")
    (failure,) = await bench.wait_for_records("TransientFailure", 1)
    assert failure["response"]["code"] == 400
    assert f"connect to {missing}" in failure["response"]["content"]
    assert "No such file or directory" in failure["response"]["content"]


async def test_smtp_over_a_unix_socket_is_offered_starttls_as_over_ip(
    farm_bench: Any, socket_dir: Path
) -> None:
    # KumoMTA has no special case for a unix peer: enable_tls applies as to an IP peer.
    sock = socket_dir / "lmtp.sock"
    async with UnixLmtpServer(sock, starttls=True) as server:
        bench = await farm_bench(
            25, path={**PATH, "enable_tls": "Required"}, queue=_route(str(sock))
        )
        await bench.inject("someone@nowhere.invalid", queue="tls.invalid")
        (failure,) = await bench.wait_for_records("TransientFailure", 1)
    assert "STARTTLS" in server.events
    assert "454" in failure["response"]["content"]
    assert server.delivered == []


@pytest.mark.parametrize("entry", ["/" + "s" * SUN_PATH_MAX, "[/" + "s" * SUN_PATH_MAX + "]"])
def test_a_socket_path_too_long_for_sun_path_is_refused_with_the_reason(entry: str) -> None:
    with pytest.raises(ValueError, match=r"108 bytes long; at most 107 fit in sun_path"):
        parse_mx_list_entry(entry)
    with pytest.raises(ValueError, match="sun_path"):
        parse_mx_list_entry({"name": "lmtp", "addr": entry})


def test_the_queue_config_naming_a_too_long_path_fails_to_load_with_the_reason() -> None:
    entry = "/" + "s" * 120
    with pytest.raises(ConfigError, match=r"mx_list\[1\].*121 bytes long; at most 107"):
        QueueConfig.from_options({"protocol": {"smtp": {"mx_list": [entry]}}})


def test_the_longest_path_sun_path_holds_is_taken() -> None:
    entry = "/" + "s" * (SUN_PATH_MAX - 1)
    target = parse_mx_list_entry(entry)
    assert (target.name, target.address, target.port) == (entry, entry, None)


def test_a_relative_path_is_still_a_host_name() -> None:
    # KumoMTA: only an absolute path names a socket
    assert parse_mx_list_entry("run/lmtp.sock").address is None


async def test_a_silent_socket_peer_is_bounded_by_the_banner_timeout(
    farm_bench: Any, socket_dir: Path
) -> None:
    sock = socket_dir / "silent.sock"
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accepted, never greeted

    server = await asyncio.start_unix_server(silent, path=str(sock))
    try:
        bench = await farm_bench(
            25, path={**PATH, "banner_timeout": "300ms"}, queue=_route(str(sock))
        )
        started = time.monotonic()
        await bench.inject("someone@nowhere.invalid", queue="silent.invalid")
        (failure,) = await bench.wait_for_records("TransientFailure", 1, timeout=5)
        assert time.monotonic() - started < 3
        assert "Timed Out" in failure["response"]["content"]
        assert f"connect to {sock}" in failure["response"]["content"]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
