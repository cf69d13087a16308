"""MTA-STS end to end: the test DNS server publishes ``_mta-sts`` TXT records, a real
HTTPS server (aiohttp, certificate from a private CA the test trusts) serves the policy
on loopback, and the recording sink shows what was delivered and over what."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import trustme
from aiohttp import web

from bench.common.dns_server import TestDnsServer
from bench.common.sink import RecordingSink
from kumocore.delivery.mta_sts import MtaSts, PolicyError, StsPolicy, parse_policy, parse_txt
from tests.queue.harness import Bench

POLICY_HOST = "127.0.0.40"


@dataclass
class PolicyServer:
    port: int = 0
    body: bytes = b""
    content_type: str = "text/plain"
    status: int = 200
    requests: list[str] = field(default_factory=list)

    def publish(self, mode: str, *mx: str, max_age: int = 86400) -> None:
        lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {m}" for m in mx),
                 f"max_age: {max_age}"]
        self.body = ("\r\n".join(lines) + "\r\n").encode()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def policy_server(ca: trustme.CA) -> AsyncIterator[PolicyServer]:
    server = PolicyServer()

    async def handle(request: web.Request) -> web.Response:
        server.requests.append(f"{request.host}{request.path}")
        if server.status in (301, 302):
            return web.Response(status=server.status, headers={"Location": "https://x/"})
        return web.Response(status=server.status, body=server.body,
                            content_type=server.content_type)

    app = web.Application()
    app.router.add_get("/.well-known/mta-sts.txt", handle)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mta-sts.example.com").configure_cert(context)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, POLICY_HOST, 0, ssl_context=context)
    await site.start()
    server.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield server
    await runner.cleanup()


def _publish_txt(dns: TestDnsServer, policy_id: str) -> None:
    dns.set_records("_mta-sts.example.com", "TXT", [f"v=STSv1; id={policy_id};"])
    dns.set_records("mta-sts.example.com", "A", [POLICY_HOST])


def _client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def _bench(make_bench: Any, policy_server: PolicyServer, ca: trustme.CA,
                 **policy: Any) -> Bench:
    bench: Bench = await make_bench(**policy)
    bench.queues.mta_sts = MtaSts(bench.runtime.resolver, https_port=policy_server.port,
                                  ssl_context=_client_context(ca))
    return bench


async def test_enforce_policy_allowing_no_mx_keeps_mail_queued_with_the_reason(
    make_bench: Any, dns: TestDnsServer, policy_server: PolicyServer, ca: trustme.CA,
) -> None:
    _publish_txt(dns, "1")
    policy_server.publish("enforce", "mx9.example.com")
    bench = await _bench(make_bench, policy_server, ca)
    await bench.inject("rcpt@example.com")
    records = await bench.wait_for_records("TransientFailure", 1)
    assert bench.sink.messages == []
    assert "MTA-STS enforce policy for example.com permits none of its MX hosts" in \
        records[0]["response"]["content"]


async def test_enforce_requires_tls_so_a_plaintext_mx_gets_nothing(
    make_bench: Any, dns: TestDnsServer, policy_server: PolicyServer, ca: trustme.CA,
) -> None:
    _publish_txt(dns, "1")
    policy_server.publish("enforce", "*.example.com")
    bench = await _bench(make_bench, policy_server, ca)
    await bench.inject("rcpt@example.com")
    records = await bench.wait_for_records("TransientFailure", 1)
    assert bench.sink.messages == []
    assert "STARTTLS is not advertised" in records[0]["response"]["content"]


async def test_testing_policy_still_delivers_without_tls(
    make_bench: Any, dns: TestDnsServer, policy_server: PolicyServer, ca: trustme.CA,
) -> None:
    _publish_txt(dns, "1")
    policy_server.publish("testing", "mx9.example.com")
    bench = await _bench(make_bench, policy_server, ca)
    await bench.inject("rcpt@example.com")
    received = await bench.sink.wait_for(1)
    assert not received[0].tls


@pytest.fixture
async def tls_sink(ca: trustme.CA) -> AsyncIterator[RecordingSink]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mx1.example.com", "mx2.example.com").configure_cert(context)
    async with RecordingSink(tls_context=context) as sink:
        yield sink


async def test_enforce_delivers_over_verified_tls_to_an_allowed_mx(
    dns: TestDnsServer, tls_sink: RecordingSink, policy_server: PolicyServer,
    ca: trustme.CA, monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
) -> None:
    from tests.queue.harness import ShapingPolicy

    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # the MX's CA, for verification
    _publish_txt(dns, "1")
    policy_server.publish("enforce", "mx1.example.com")
    bench = await Bench(ShapingPolicy(sink_port=tls_sink.port), dns, tls_sink).start()
    try:
        bench.queues.mta_sts = MtaSts(bench.runtime.resolver, https_port=policy_server.port,
                                      ssl_context=_client_context(ca))
        await bench.inject("rcpt@example.com")
        received = await tls_sink.wait_for(1)
    finally:
        await bench.stop()
    assert received[0].tls


async def test_enforce_refuses_an_mx_whose_certificate_does_not_verify(
    dns: TestDnsServer, tls_sink: RecordingSink, policy_server: PolicyServer,
    ca: trustme.CA,
) -> None:
    from tests.queue.harness import ShapingPolicy

    # The MX certificate's CA is not trusted by the delivery client (no SSL_CERT_FILE);
    # the path alone would accept any certificate: the policy must override it.
    _publish_txt(dns, "1")
    policy_server.publish("enforce", "mx1.example.com")
    shaping = ShapingPolicy(sink_port=tls_sink.port, path={"enable_tls": "OpportunisticInsecure"})
    bench = await Bench(shaping, dns, tls_sink).start()
    try:
        bench.queues.mta_sts = MtaSts(bench.runtime.resolver, https_port=policy_server.port,
                                      ssl_context=_client_context(ca))
        await bench.inject("rcpt@example.com")
        records = await bench.wait_for_records("TransientFailure", 1)
    finally:
        await bench.stop()
    assert tls_sink.messages == []
    assert "CERTIFICATE_VERIFY_FAILED" in records[0]["response"]["content"]


async def test_policy_is_cached_by_id_and_refetched_when_the_id_changes(
    dns: TestDnsServer, policy_server: PolicyServer, ca: trustme.CA,
) -> None:
    from kumocore.dns.resolver import Resolver

    resolver = Resolver()
    resolver.configure([dns.address])
    sts = MtaSts(resolver, https_port=policy_server.port, ssl_context=_client_context(ca))
    _publish_txt(dns, "1")
    policy_server.publish("testing", "mx1.example.com", max_age=3600)
    first = await sts.policy_for("example.com")
    again = await sts.policy_for("EXAMPLE.com.")
    assert first == again == StsPolicy("testing", ("mx1.example.com",), 3600, "1")
    assert sts.fetches == 1
    dns.set_records("_mta-sts.example.com", "TXT", ["v=STSv1; id=2;"], ttl=0)
    resolver.configure([dns.address])  # forget the cached TXT record
    sts._recent.clear()  # as RECHECK_INTERVAL later
    policy_server.publish("enforce", "mx1.example.com")
    changed = await sts.policy_for("example.com")
    assert (changed.mode, changed.id, sts.fetches) == ("enforce", "2", 2)  # type: ignore[union-attr]


@pytest.mark.parametrize("trouble", ["too_big", "html", "redirect", "bad_version"])
async def test_unusable_policy_files_mean_no_policy(
    dns: TestDnsServer, policy_server: PolicyServer, ca: trustme.CA, trouble: str,
) -> None:
    from kumocore.dns.resolver import Resolver

    resolver = Resolver()
    resolver.configure([dns.address])
    sts = MtaSts(resolver, https_port=policy_server.port, ssl_context=_client_context(ca))
    _publish_txt(dns, "1")
    policy_server.publish("enforce", "mx1.example.com")
    if trouble == "too_big":
        policy_server.body += b"x: " + b"y" * 70_000 + b"\r\n"
    elif trouble == "html":
        policy_server.content_type = "text/html"
    elif trouble == "redirect":
        policy_server.status = 302
    else:
        policy_server.body = policy_server.body.replace(b"STSv1", b"STSv2")
    assert await sts.policy_for("example.com") is None
    assert policy_server.requests == [f"mta-sts.example.com:{policy_server.port}"
                                      "/.well-known/mta-sts.txt"]


def test_txt_record_rules() -> None:
    assert parse_txt(["v=STSv1; id=20160831085700Z;"]) == "20160831085700Z"
    assert parse_txt(["v=STSv1; id=a;", "v=STSv1; id=b;"]) is None  # two: no policy
    assert parse_txt(["v=spf1 -all"]) is None
    assert parse_txt(["v=STSv1; id=not-alnum!;"]) is None


@pytest.mark.parametrize("age", ["\u00b2", "60s", "12345678901"])
def test_policy_max_age_that_is_not_ascii_digits_is_a_policy_error(age: str) -> None:
    with pytest.raises(PolicyError, match="max_age"):
        parse_policy(f"version: STSv1\nmode: enforce\nmx: *.example.com\nmax_age: {age}\n")


def test_wildcard_matches_exactly_one_leftmost_label() -> None:
    policy = parse_policy("version: STSv1\nmode: enforce\nmx: *.example.com\nmax_age: 60\n")
    assert policy.allows("mx1.example.com.")
    assert not policy.allows("a.b.example.com.")
    assert not policy.allows("example.com.")


async def test_enforce_keeps_only_allowed_hosts_and_gets_its_own_site_name(
    dns: TestDnsServer, policy_server: PolicyServer, ca: trustme.CA,
) -> None:
    from kumocore.dns.mx import MailExchanger
    from kumocore.dns.resolver import Resolver

    resolver = Resolver()
    resolver.configure([dns.address])
    sts = MtaSts(resolver, https_port=policy_server.port, ssl_context=_client_context(ca))
    _publish_txt(dns, "1")
    policy_server.publish("enforce", "mx2.example.com")
    mx = MailExchanger.from_records(
        "example.com", [(10, "mx1.example.com"), (20, "mx2.example.com")])
    applied = await sts.apply("example.com", mx)
    assert applied.hosts == ["mx2.example.com."]
    assert applied.by_pref == {20: ["mx2.example.com."]}
    assert applied.mta_sts == "enforce" and applied.site_name != mx.site_name


async def test_set_mta_sts_enabled_false_neither_fetches_nor_applies_policies(
    make_bench: Any, dns: TestDnsServer, policy_server: PolicyServer, ca: trustme.CA,
) -> None:
    from kumocore.dns import make_dns_functions

    _publish_txt(dns, "1")
    policy_server.publish("enforce", "mx9.example.com")  # would allow none of the MX hosts
    bench = await _bench(make_bench, policy_server, ca)
    set_enabled = make_dns_functions(bench.runtime.resolver)["dns.set_mta_sts_enabled"]
    set_enabled(False)
    await bench.inject("rcpt@example.com")
    assert len(await bench.sink.wait_for(1)) == 1
    assert policy_server.requests == []
    assert dns.query_count("_mta-sts.example.com") == 0
    with pytest.raises(Exception, match="expected true or false"):
        set_enabled("no")


async def test_a_domain_without_mx_records_gets_no_mta_sts_policy(
    dns: TestDnsServer, policy_server: PolicyServer, ca: trustme.CA,
) -> None:
    from kumocore.dns.mx import MailExchanger
    from kumocore.dns.resolver import Resolver

    # As KumoMTA: a policy only filters a real MX set, not the domain's own address.
    resolver = Resolver()
    resolver.configure([dns.address])
    sts = MtaSts(resolver, https_port=policy_server.port, ssl_context=_client_context(ca))
    _publish_txt(dns, "1")
    policy_server.publish("enforce", "mx9.example.com")
    implicit = MailExchanger.implicit("example.com")
    assert await sts.apply("example.com", implicit) is implicit
    assert sts.fetches == 0


async def test_the_policy_cache_is_counted_as_kumomtas_mta_sts_policy_cache(
    dns: TestDnsServer, policy_server: PolicyServer, ca: trustme.CA,
) -> None:
    from kumocore import cache_stats
    from kumocore.dns.resolver import Resolver

    resolver = Resolver()
    resolver.configure([dns.address])
    sts = MtaSts(resolver, https_port=policy_server.port, ssl_context=_client_context(ca))
    stats = cache_stats("mta_sts_policy")
    before = (stats.hits, stats.misses, stats.inserts)
    _publish_txt(dns, "1")
    policy_server.publish("testing", "mx1.example.com", max_age=3600)
    await sts.policy_for("example.com")  # not cached: a miss, fetched and stored
    sts._recent.clear()  # as RECHECK_INTERVAL later
    await sts.policy_for("example.com")  # the same TXT id: the cached policy, a hit
    moved = (stats.hits - before[0], stats.misses - before[1], stats.inserts - before[2])
    assert moved == (1, 1, 1)  # hits, misses, stores
    assert stats.size() >= 1
