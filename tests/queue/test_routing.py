"""Routing end to end, KumoMTA's forms: the queue name (domain, ``[IP]``, ``host:port``,
``!routing_domain``), ``protocol = { smtp = { mx_list } }``, maildir, outbound AUTH and
TLS — each proven at a real loopback receiver and in the log records."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.common.auth_mx import AuthMx
from bench.common.dns_server import TestDnsServer
from bench.common.sink import RecordingSink
from kumocore.mail.queue_name import queue_name_for
from tests.queue.harness import ZONES, Bench

ROUTING_ZONES = {
    **ZONES,
    "smarthost.test": {"A": ["127.0.0.2"]},
}


@pytest.fixture
def dns() -> Iterator[TestDnsServer]:
    with TestDnsServer(dict(ROUTING_ZONES)) as server:
        yield server


@pytest.fixture
async def other_sink() -> AsyncIterator[RecordingSink]:
    async with RecordingSink(host="127.0.0.2") as server:
        yield server


@pytest.fixture
async def auth_mx(tmp_path: Path) -> AsyncIterator[AuthMx]:
    server = await AuthMx("127.0.0.4", "mx.auth.test", {"alice": "s3cret"}, tmp_path).start()
    yield server
    await server.stop()


def _auth_route(mx: AuthMx) -> dict[str, Any]:
    return {"protocol": {"smtp": {"mx_list": [
        {"name": "mx.auth.test", "addr": f"127.0.0.4:{mx.port}"}]}}}


AUTH = {"smtp_auth_plain_username": "alice", "smtp_auth_plain_password": {"key_data": "s3cret"}}


async def test_queue_naming_host_and_port_delivers_to_that_smarthost_not_the_mx(
    make_bench: Any, other_sink: RecordingSink
) -> None:
    bench: Bench = await make_bench()
    await bench.inject("rcpt@example.com", queue=f"smarthost.test:{other_sink.port}")
    records = await bench.wait_for_records("Delivery", 1)
    assert [m.recipient for m in other_sink.messages] == ["rcpt@example.com"]
    assert bench.sink.messages == []
    assert records[0]["site"] == f"unspecified->smarthost.test:{other_sink.port}@smtp_client"
    assert records[0]["queue"] == f"smarthost.test:{other_sink.port}"


async def test_queue_naming_an_ip_literal_delivers_there_without_any_mx_lookup(
    make_bench: Any,
) -> None:
    bench: Bench = await make_bench()
    # nowhere.invalid is not in DNS: an MX lookup would fail the attempt.
    await bench.inject("rcpt@nowhere.invalid", queue="[127.0.0.1]")
    records = await bench.wait_for_records("Delivery", 1)
    assert [m.recipient for m in bench.sink.messages] == ["rcpt@nowhere.invalid"]
    assert records[0]["site"] == "unspecified->127.0.0.1@smtp_client"


async def test_routing_domain_of_the_queue_name_decides_where_mail_goes(
    make_bench: Any, other_sink: RecordingSink
) -> None:
    bench: Bench = await make_bench()
    queue = queue_name_for("customer.example", routing_domain=f"smarthost.test:{other_sink.port}")
    await bench.inject("rcpt@customer.example", queue=queue)
    records = await bench.wait_for_records("Delivery", 1)
    assert [m.recipient for m in other_sink.messages] == ["rcpt@customer.example"]
    assert records[0]["queue"] == f"customer.example!smarthost.test:{other_sink.port}"


async def test_mx_list_skips_a_host_that_is_down_and_delivers_to_the_next(
    make_bench: Any, other_sink: RecordingSink
) -> None:
    mx_list = ["[127.0.0.3]:9", {"name": "mx.up.test", "addr": f"127.0.0.2:{other_sink.port}"}]
    bench: Bench = await make_bench(queue={"protocol": {"smtp": {"mx_list": mx_list}}})
    await bench.inject("rcpt@example.com")
    records = await bench.wait_for_records("Delivery", 1)
    assert [m.recipient for m in other_sink.messages] == ["rcpt@example.com"]
    assert bench.sink.messages == []
    assert records[0]["site"] == (
        f"unspecified->mx_list:[127.0.0.3]:9,127.0.0.2:{other_sink.port}@smtp_client")
    assert records[0]["peer_address"] == {"name": "mx.up.test", "addr": "127.0.0.2"}


async def test_maildir_protocol_writes_a_maildir_file_with_the_configured_modes(
    make_bench: Any, tmp_path: Path
) -> None:
    root = tmp_path / "mail" / "box"
    bench: Bench = await make_bench(queue={"protocol": {
        "maildir_path": str(root), "dir_mode": 0o750, "file_mode": 0o640}})
    await bench.inject("user@example.com")
    records = await bench.wait_for_records("Delivery", 1)
    (written,) = list((root / "new").iterdir())
    assert written.read_bytes() == b"Subject: test\r\n\r\nhello\r\n"
    assert list((root / "tmp").iterdir()) == [] and (root / "cur").is_dir()
    assert stat.S_IMODE(written.stat().st_mode) == 0o640
    assert all(stat.S_IMODE(os.stat(root / d).st_mode) == 0o750 for d in ("", "tmp", "new"))
    assert records[0]["response"]["code"] == 200
    assert records[0]["response"]["content"] == (
        f"user@example.com: wrote to maildir with id={written.name}")
    assert records[0]["delivery_protocol"] == "Maildir"
    assert bench.sink.messages == []
    await bench.wait_until(lambda: bench.spooled() == 0)


async def test_templated_maildir_path_makes_a_maildir_per_domain_and_user(
    make_bench: Any, tmp_path: Path
) -> None:
    template = str(tmp_path) + "/{{ domain_part }}/{{ local_part }}"
    bench: Bench = await make_bench(queue={"protocol": {"maildir_path": template}})
    await bench.inject("alice@example.com")
    await bench.inject("bob@example.com")
    await bench.wait_for_records("Delivery", 2)
    for user in ("alice", "bob"):
        assert len(list((tmp_path / "example.com" / user / "new").iterdir())) == 1


async def test_maildir_path_rendered_outside_its_directory_is_bounced_not_written(
    make_bench: Any, tmp_path: Path
) -> None:
    base = tmp_path / "boxes"
    bench: Bench = await make_bench(queue={"protocol": {
        "maildir_path": str(base) + "/{{ meta.box }}"}})
    await bench.inject("user@example.com", meta={"box": "../escaped"})
    (record,) = await bench.wait_for_records("Bounce", 1)
    assert record["response"]["code"] == 550
    assert "leaves" in record["response"]["content"]
    assert not (tmp_path / "escaped").exists()


async def test_maildir_write_failure_is_a_transient_failure_retried_later(
    make_bench: Any, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    bench: Bench = await make_bench(queue={"protocol": {"maildir_path": str(blocker / "box")}})
    await bench.inject("user@example.com")
    (record,) = await bench.wait_for_records("TransientFailure", 1)
    assert record["response"]["code"] == 400
    assert "failed to write to maildir" in record["response"]["content"]
    assert bench.spooled() == 1


async def test_auth_plain_over_verified_starttls_delivers_as_the_user_and_logs_tls(
    make_bench: Any, auth_mx: AuthMx, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(auth_mx.ca_file))  # the CA kumocore trusts
    bench: Bench = await make_bench(queue=_auth_route(auth_mx),
                                    path={"enable_tls": "Required", **AUTH})
    await bench.inject("rcpt@example.com")
    (record,) = await bench.wait_for_records("Delivery", 1)
    assert [(m[1], m[3]) for m in auth_mx.state.messages] == [("rcpt@example.com", "alice")]
    assert auth_mx.state.auth_attempts == [("alice", True)]
    assert record["tls_protocol_version"].startswith("TLSv1.")
    assert record["tls_cipher"]
    assert record["tls_peer_subject_name"] == ["CN=mx.auth.test"]


async def test_wrong_password_is_a_transient_failure_and_nothing_is_sent(
    make_bench: Any, auth_mx: AuthMx, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(auth_mx.ca_file))
    path = {"enable_tls": "Required", **AUTH, "smtp_auth_plain_password": {"key_data": "nope"}}
    bench: Bench = await make_bench(queue=_auth_route(auth_mx), path=path)
    await bench.inject("rcpt@example.com")
    (record,) = await bench.wait_for_records("TransientFailure", 1)
    assert "authenticating as alice via SMTP AUTH PLAIN" in record["response"]["content"]
    assert "535" in record["response"]["content"]
    assert auth_mx.state.messages == [] and auth_mx.state.auth_attempts == [("alice", False)]


async def test_credential_is_not_sent_over_tls_whose_certificate_was_not_verified(
    make_bench: Any, auth_mx: AuthMx
) -> None:
    bench: Bench = await make_bench(queue=_auth_route(auth_mx),
                                    path={"enable_tls": "OpportunisticInsecure", **AUTH})
    await bench.inject("rcpt@example.com")
    (record,) = await bench.wait_for_records("TransientFailure", 1)
    assert "certificate was not validated" in record["response"]["content"]
    assert auth_mx.state.tls_sessions == 1 and auth_mx.state.auth_attempts == []


async def test_credential_is_not_sent_in_clear_text_without_the_opt_in(
    make_bench: Any, tmp_path: Path
) -> None:
    plain = await AuthMx("127.0.0.4", "mx.auth.test", {"alice": "s3cret"}, tmp_path,
                         starttls=False).start()
    try:
        bench: Bench = await make_bench(queue=_auth_route(plain), path=AUTH)
        await bench.inject("rcpt@example.com")
        (record,) = await bench.wait_for_records("TransientFailure", 1)
        assert "TLS is not enabled and AUTH PLAIN is required" in record["response"]["content"]
        assert plain.state.auth_attempts == []
    finally:
        await plain.stop()


async def test_opportunistic_tls_with_an_untrusted_certificate_fails_without_fallback(
    make_bench: Any, auth_mx: AuthMx
) -> None:
    bench: Bench = await make_bench(queue=_auth_route(auth_mx),
                                    path={"enable_tls": "Opportunistic"})
    await bench.inject("rcpt@example.com")
    (record,) = await bench.wait_for_records("TransientFailure", 1)
    assert "TLS handshake with mx.auth.test failed" in record["response"]["content"]
    assert auth_mx.state.messages == []


async def test_required_tls_refuses_a_peer_without_starttls(make_bench: Any) -> None:
    bench: Bench = await make_bench(path={"enable_tls": "Required"})  # the sink has no TLS
    await bench.inject("rcpt@example.com")
    (record,) = await bench.wait_for_records("TransientFailure", 1)
    assert record["response"]["code"] == 400  # KumoMTA's failed connection round
    assert record["response"]["content"].startswith(
        "KumoMTA internal: failed to connect to any candidate hosts: ")
    assert "tls policy is Required but STARTTLS is not advertised by" in \
        record["response"]["content"]
    assert bench.sink.messages == []


async def test_disabled_tls_sends_in_clear_and_logs_no_tls_fields(make_bench: Any) -> None:
    bench: Bench = await make_bench(path={"enable_tls": "Disabled"})
    await bench.inject("rcpt@example.com")
    (record,) = await bench.wait_for_records("Delivery", 1)
    assert record.get("tls_cipher") is None and record.get("tls_protocol_version") is None
    assert record["delivery_protocol"] == "ESMTP"


async def _plain_mx_with_untrusted_tls(tmp_path: Path) -> AuthMx:
    return await AuthMx("127.0.0.4", "mx.auth.test", {}, tmp_path, require_auth=False).start()


async def test_failed_opportunistic_handshake_reconnects_in_clear_when_asked(
    make_bench: Any, tmp_path: Path
) -> None:
    mx = await _plain_mx_with_untrusted_tls(tmp_path)
    try:
        bench: Bench = await make_bench(queue=_auth_route(mx), path={
            "enable_tls": "Opportunistic",
            "opportunistic_tls_reconnect_on_failed_handshake": True})
        await bench.inject("rcpt@example.com")
        (record,) = await bench.wait_for_records("Delivery", 1)
        assert [m[1] for m in mx.state.messages] == ["rcpt@example.com"]
        assert record.get("tls_cipher") is None  # delivered in clear, after the failure
    finally:
        await mx.stop()


async def test_remembered_broken_tls_sends_opportunistic_mail_in_clear_next_time(
    make_bench: Any, tmp_path: Path
) -> None:
    mx = await _plain_mx_with_untrusted_tls(tmp_path)
    try:
        bench: Bench = await make_bench(queue={**_auth_route(mx), "retry_interval": "1s"},
                                        path={"enable_tls": "Opportunistic",
                                              "remember_broken_tls": "1h"})
        await bench.inject("rcpt@example.com")
        (failed,) = await bench.wait_for_records("TransientFailure", 1)
        assert "TLS handshake" in failed["response"]["content"]
        (record,) = await bench.wait_for_records("Delivery", 1, timeout=15)
        assert [m[1] for m in mx.state.messages] == ["rcpt@example.com"]
        assert record.get("tls_cipher") is None
    finally:
        await mx.stop()


async def test_remembered_broken_tls_fails_required_mode_naming_the_option(
    make_bench: Any, tmp_path: Path
) -> None:
    mx = await _plain_mx_with_untrusted_tls(tmp_path)
    try:
        bench: Bench = await make_bench(queue={**_auth_route(mx), "retry_interval": "1s"},
                                        path={"enable_tls": "Required",
                                              "remember_broken_tls": "1h"})
        await bench.inject("rcpt@example.com")
        records = await bench.wait_for_records("TransientFailure", 2, timeout=15)
        assert "TLS handshake" in records[0]["response"]["content"]
        assert "remember_broken_tls" in records[1]["response"]["content"]
        assert mx.state.messages == []
    finally:
        await mx.stop()


async def test_client_certificate_from_key_sources_is_presented_to_the_mx(
    make_bench: Any, tmp_path: Path
) -> None:
    from kumocore.reception.tls import self_signed_pem

    cert, key = self_signed_pem("client.test")
    (tmp_path / "client-ca.pem").write_bytes(cert)
    mx = await AuthMx("127.0.0.4", "mx.auth.test", {}, tmp_path, require_auth=False,
                      client_ca=tmp_path / "client-ca.pem").start()
    try:
        bench: Bench = await make_bench(queue=_auth_route(mx), path={
            "enable_tls": "RequiredInsecure",
            "tls_certificate": {"key_data": cert.decode()},
            "tls_private_key": {"key_data": key.decode()}})
        await bench.inject("rcpt@example.com")
        await bench.wait_for_records("Delivery", 1)
        assert mx.state.client_subjects == ["client.test"]
        assert [m[1] for m in mx.state.messages] == ["rcpt@example.com"]
    finally:
        await mx.stop()


async def test_unreadable_client_certificate_fails_the_attempt_saying_why(
    make_bench: Any, tmp_path: Path
) -> None:
    mx = await _plain_mx_with_untrusted_tls(tmp_path)
    try:
        bench: Bench = await make_bench(queue=_auth_route(mx), path={
            "enable_tls": "OpportunisticInsecure",
            "tls_certificate": str(tmp_path / "missing.pem")})
        await bench.inject("rcpt@example.com")
        (record,) = await bench.wait_for_records("TransientFailure", 1)
        assert "client TLS configuration cannot be used" in record["response"]["content"]
        assert mx.state.messages == []
    finally:
        await mx.stop()


async def test_mx_list_name_that_does_not_resolve_defers_instead_of_bouncing(
    make_bench: Any,
) -> None:
    # Not "every MX address is prohibited" (a mail loop, 5.4.4): no address was found,
    # which a later attempt may change.
    bench: Bench = await make_bench(
        queue={"protocol": {"smtp": {"mx_list": ["nowhere.invalid"]}},
               "retry_interval": "60s"},
        path={"prohibited_hosts": []})
    await bench.inject("user@example.com")
    (failure,) = await bench.wait_for_records("TransientFailure", 1)
    assert failure["response"]["code"] == 451
    assert "nowhere.invalid" in failure["response"]["content"]
    assert bench.log_sink.of_type("Bounce") == []
    assert bench.spooled() == 1
