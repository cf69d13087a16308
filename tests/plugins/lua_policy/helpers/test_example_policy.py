"""End to end: docs/examples/helpers (a policy using the sources, queue, shaping,
listener_domains and dkim_sign helpers with data files) under a real ``kumocore serve``,
with the test DNS server and a recording sink; everything is checked on the wire."""

from __future__ import annotations

import itertools
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import dkim
import pytest

from bench.common.dns_server import TestDnsServer
from bench.common.world import ThreadedSink, free_port
from tests.core.dkim import opendkim
from tests.core.dkim.conftest import _NACL
from tests.plugins.lua_policy.helpers.support import (
    ExampleSite,
    Served,
    install_example,
    message,
    send,
    send_steps,
    validate,
)

ZONES = {
    "example.net": {"MX": [(10, "mx.sink.test")]},
    "example.com": {"MX": [(10, "mx.sink.test")]},
    "a.example.com": {"MX": [(10, "mx.sink.test")]},
    "mx.sink.test": {"A": ["127.0.0.1"]},
    "example.org": {"MX": [(10, "mx2.sink.test")]},  # its own site: its own rate
    "mx2.sink.test": {"A": ["127.0.0.1"]},
}
_tags = itertools.count(1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ExampleSite, ThreadedSink]]:
    with TestDnsServer(dict(ZONES)) as dns:
        sink = ThreadedSink().start()
        site = install_example(tmp_path_factory.mktemp("example"), dns.address, sink.port)
        server = Served(site.policy, site.smtp_port).start()
        try:
            yield site, sink
        finally:
            server.stop()
            sink.stop()


def wait_for(sink: ThreadedSink, predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for deliveries at the sink"
        time.sleep(0.05)


def delivered(sink: ThreadedSink, tag: str) -> list:  # type: ignore[type-arg]
    return [m for m in list(sink.sink.messages) if tag in m.recipient]


def test_example_policy_validates(world: tuple[ExampleSite, ThreadedSink]) -> None:
    site, _ = world
    result = validate(site.policy)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shaping_file_limits_connections_and_deliveries_per_connection_at_the_sink(
    world: tuple[ExampleSite, ThreadedSink],
) -> None:
    site, sink = world
    tag = f"shape{next(_tags)}"
    sink.sink.state.max_active.clear()
    for n in range(12):
        rcpt = f"{tag}-{n}@example.net"
        code, _ = send(
            site.smtp_port,
            "sender@example.com",
            rcpt,
            message("sender@example.com", rcpt, f"{tag}-{n}"),
        )
        assert code == 250
    wait_for(sink, lambda: len(delivered(sink, tag)) == 12)
    got = delivered(sink, tag)
    assert {m.source_ip for m in got} == {"127.0.10.1"}  # default tenant: the shared pool
    # example.net: connection_limit = 2, max_deliveries_per_connection = 3
    assert 1 <= sink.sink.state.max_active["127.0.10.1"] <= 2
    per_connection: dict[int, int] = {}
    for m in got:
        per_connection[m.connection] = per_connection.get(m.connection, 0) + 1
    assert max(per_connection.values()) <= 3
    assert len(per_connection) >= 4


def test_shaping_file_message_rate_holds_at_the_sink(
    world: tuple[ExampleSite, ThreadedSink],
) -> None:
    site, sink = world
    tag = f"rate{next(_tags)}"
    for n in range(15):
        rcpt = f"{tag}-{n}@example.org"
        body = message("sender@example.com", rcpt, f"{tag}-{n}")
        assert send(site.smtp_port, "sender@example.com", rcpt, body)[0] == 250
    wait_for(sink, lambda: len(delivered(sink, tag)) == 15, timeout=60)
    arrivals = sorted(m.at for m in delivered(sink, tag))
    # max_message_rate = "5/s": after a burst of at most 5, ten more need at least 2 s
    assert arrivals[-1] - arrivals[0] >= 1.5, arrivals[-1] - arrivals[0]
    for start in arrivals:
        in_one_second = [t for t in arrivals if start <= t < start + 1.0]
        assert len(in_one_second) <= 10


def test_tenant_mail_leaves_from_its_pool_sources_with_their_ehlo_names(
    world: tuple[ExampleSite, ThreadedSink],
) -> None:
    site, sink = world
    tag = f"tenant{next(_tags)}"
    for n in range(12):
        rcpt = f"{tag}-{n}@example.net"
        body = message(
            "sender@example.com",
            rcpt,
            f"{tag}-{n}",
            "X-Tenant: bigcustomer\r\nX-Campaign: spring\r\n",
        )
        assert send(site.smtp_port, "sender@example.com", rcpt, body)[0] == 250
    wait_for(sink, lambda: len(delivered(sink, tag)) == 12)
    got = delivered(sink, tag)
    ehlo_of = {"127.0.10.2": "mta2.example.com", "127.0.10.3": "mta3.example.com"}
    assert {m.source_ip for m in got} <= set(ehlo_of)
    assert all(m.ehlo == ehlo_of[m.source_ip] for m in got)
    assert len({m.source_ip for m in got}) == 2  # weights 2:1, both used over 12 messages
    assert all(b"X-Tenant" not in m.data and b"X-Campaign" not in m.data for m in got)
    # ip-3 is limited to one connection to example.net by a per-source shaping block
    assert sink.sink.state.max_active["127.0.10.3"] <= 1


def _verify_all(data: bytes, records: dict[bytes, bytes]) -> list[bytes]:
    """The d= of every DKIM signature on ``data``, each verified by dkimpy."""
    checker = dkim.DKIM(data)
    domains = []
    count = data.split(b"\r\n\r\n", 1)[0].lower().count(b"\ndkim-signature:") + int(
        data.lower().startswith(b"dkim-signature:")
    )
    for index in range(count):
        ok = checker.verify(idx=index, dnsfunc=lambda name, timeout=5: records[name])
        assert ok, f"signature {index} did not verify"
        domains.append(checker.domain)
    return domains


def test_messages_are_dkim_signed_per_dkim_data_and_verify_with_dkimpy(
    world: tuple[ExampleSite, ThreadedSink], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dkim, "nacl", _NACL, raising=False)
    site, sink = world
    records = {
        b"s1._domainkey.example.com.": site.keys["example.com"].txt,
        b"e1._domainkey.ed.example.com.": site.keys["ed.example.com"].txt,
        b"s1._domainkey.esp.example.": site.keys["esp.example"].txt,
    }
    tag = f"dkim{next(_tags)}"
    senders = {"rsa": "news@example.com", "ed": "news@ed.example.com", "esp": "x@other.org"}
    for kind, sender in senders.items():
        rcpt = f"{tag}-{kind}@example.net"
        assert send(site.smtp_port, sender, rcpt, message(sender, rcpt, f"{tag}-{kind}"))[0] == 250
    wait_for(sink, lambda: len(delivered(sink, tag)) == 3)
    by_kind = {m.recipient.split("-")[1].split("@")[0]: m.data for m in delivered(sink, tag)}
    assert _verify_all(by_kind["rsa"], records) == [b"example.com"]  # no ESP signature
    assert _verify_all(by_kind["ed"], records) == [b"ed.example.com"]
    assert b"a=ed25519-sha256" in by_kind["ed"]
    assert _verify_all(by_kind["esp"], records) == [b"esp.example"]


@pytest.mark.parametrize(
    ("recipient", "rcpt_code", "data_code"),
    [
        ("user@example.com", 250, 250),  # relay_to
        ("user@a.example.com", 250, 250),  # "*.example.com" wildcard
        ("user@www.example.com", 550, None),  # wildcard excluded by its own entry
        ("user@elsewhere.test", 550, None),  # not listed: no relaying for an untrusted peer
        # log_oob / log_arf: RCPT is accepted for reports; a message that is not a
        # report is then refused (these domains do not relay_to)
        ("user@bounce.example.com", 250, 550),
        ("user@fbl.example.com", 250, 550),
    ],
)
def test_listener_domains_decide_what_an_untrusted_peer_may_send(
    world: tuple[ExampleSite, ThreadedSink],
    recipient: str,
    rcpt_code: int,
    data_code: int | None,
) -> None:
    site, _ = world
    rcpt, final = send_steps(
        site.smtp_port,
        "someone@remote.test",
        recipient,
        message("someone@remote.test", recipient, "relay"),
        source="127.0.0.5",
    )
    assert rcpt[0] == rcpt_code, rcpt
    assert (final[0] if final else None) == data_code, final


def test_a_bad_data_file_fails_validate_and_serve_naming_file_and_key(
    tmp_path: Path, world: tuple[ExampleSite, ThreadedSink]
) -> None:
    site, _ = world
    policy_dir = site.policy.parent
    broken = tmp_path / "policy"
    broken.mkdir()
    for path in policy_dir.iterdir():
        text = path.read_text().replace(str(policy_dir), str(broken))
        (broken / path.name).write_text(text)
    sources = broken / "sources.toml"
    sources.write_text(
        sources.read_text().replace('[pool."shared"."ip-1"]', '[pool."shared"."ip-9"]')
    )
    result = validate(broken / "init.lua")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f'{sources}: pool.shared."ip-9": pool member' in output, output
    # serve loads the policy the same way, and stops before it listens
    served = Served(broken / "init.lua", free_port())  # nothing must answer there
    served.log = tmp_path / "serve.log"
    with pytest.raises(RuntimeError, match="kumocore exited"):
        served.start(timeout=60)
    assert "pool member 'ip-9' is not a source" in served.log.read_text()
    assert '"listening"' not in served.log.read_text()
    lines = (broken / "init.lua").read_text().splitlines()
    setup_line = next(n for n, line in enumerate(lines, 1) if line.startswith("sources:setup"))
    assert f"init.lua:{setup_line}:" in output  # the policy line that set the helper up
    assert "not a source defined" in output


def test_http_injected_mail_gets_its_tenant_pool_and_dkim_signature(
    world: tuple[ExampleSite, ThreadedSink], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dkim, "nacl", _NACL, raising=False)
    site, sink = world
    tag = f"http{next(_tags)}"
    body = {
        "envelope_sender": "news@example.com",
        "content": f"From: <news@example.com>\r\nTo: <{tag}@example.net>\r\nSubject: {tag}\r\n"
        "X-Tenant: bigcustomer\r\n\r\nHello over HTTP.\r\n",
        "recipients": [{"email": f"{tag}@example.net"}],
    }
    request = urllib.request.Request(
        f"http://127.0.0.1:{site.http_port}/api/inject/v1",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.loads(response.read())["success_count"] == 1
    wait_for(sink, lambda: len(delivered(sink, tag)) == 1)
    (got,) = delivered(sink, tag)
    assert got.source_ip in ("127.0.10.2", "127.0.10.3")  # bigcustomer's pool
    records = {b"s1._domainkey.example.com.": site.keys["example.com"].txt}
    assert _verify_all(got.data, records) == [b"example.com"]


def test_example_policy_signatures_also_verify_with_opendkim(
    world: tuple[ExampleSite, ThreadedSink],
) -> None:
    reason = opendkim.unavailable_reason()
    if reason:
        pytest.skip(reason)
    site, sink = world
    records = {
        "s1._domainkey.example.com": site.keys["example.com"].txt.decode(),
        "e1._domainkey.ed.example.com": site.keys["ed.example.com"].txt.decode(),
        "s1._domainkey.esp.example": site.keys["esp.example"].txt.decode(),
    }
    tag = f"odkim{next(_tags)}"
    senders = {"rsa": "news@example.com", "ed": "news@ed.example.com", "esp": "x@other.org"}
    for kind, sender in senders.items():
        rcpt = f"{tag}-{kind}@example.net"
        assert send(site.smtp_port, sender, rcpt, message(sender, rcpt, f"{tag}-{kind}"))[0] == 250
    wait_for(sink, lambda: len(delivered(sink, tag)) == 3)
    for got in delivered(sink, tag):
        result = opendkim.opendkim_verify(got.data, records)
        assert result.returncode == 0, (got.recipient, result.stderr.decode())
