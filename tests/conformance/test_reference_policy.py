"""Conformance: KumoMTA's example server policy runs unchanged except for its literals.

A real DNS server serves the MX/A records of gmail.com, yahoo.com, outlook.com,
comcast.net and examplecorp.com (the seed resolves MX site names while it loads) and the
DKIM key the test generates. The checks follow what the policy says it does: traffic
shaping by site name and domain, queue settings by tenant, tenant meta and DKIM signing
at reception — and Lua's own semantics where the policy relies on them (its table-keyed
``SHAPE_BY_SOURCE`` never matches; an unknown tenant makes ``merge_into(nil, ...)`` fail).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import dkim
import dns.resolver
import pytest

from bench.common.dns_server import TestDnsServer, reference_zones
from kumocore import PolicyError
from kumocore.config import EgressPathConfig, QueueConfig
from kumocore.mail.message import Message
from kumocore.node.runtime import Runtime

from .reference_policy import (
    SEED,
    SOURCE_ADDRESSES,
    ReferencePolicy,
    bounce_rules_path,
    code_skeleton,
    dkim_record,
    missing_requirements,
    prepare_reference_policy,
    seed_path,
)

pytestmark = pytest.mark.skipif(
    seed_path() is None, reason=f"the reference policy is not checked out at {SEED}")

GMAIL_SITE = "(alt1|alt2|alt3|alt4)?.gmail-smtp-in.l.google.com"


@pytest.fixture
def dns_server() -> Iterator[TestDnsServer]:
    with TestDnsServer(reference_zones()) as server:
        yield server


@pytest.fixture
def reference(tmp_path: Path, dns_server: TestDnsServer) -> ReferencePolicy:
    missing = missing_requirements()
    if missing:
        pytest.skip(f"the reference policy needs {', '.join(missing)} (plugin not installed)")
    ref = prepare_reference_policy(
        tmp_path, dns_address=dns_server.address, bounce_rules=bounce_rules_path(tmp_path))
    name, value = dkim_record(ref)
    dns_server.set_records(name, "TXT", [value])
    return ref


@pytest.fixture
async def runtime(reference: ReferencePolicy) -> AsyncIterator[Runtime]:
    runtime = Runtime()
    await runtime.load(reference.wrapper)
    yield runtime
    await runtime.hooks.shutdown()


def test_only_literals_differ_from_the_seed(reference: ReferencePolicy) -> None:
    original = SEED.read_text()
    patched = reference.policy.read_text()
    assert patched != original
    assert code_skeleton(patched) == code_skeleton(original)
    assert "kumo.on('get_queue_config'" in patched


@pytest.mark.slow
def test_kumocore_validate_accepts_the_policy(reference: ReferencePolicy) -> None:
    cli = Path(sys.executable).with_name("kumocore")
    result = subprocess.run(
        [str(cli), "validate", "--policy", str(reference.wrapper)],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "OK: 2 spools, 1 ESMTP and 2 HTTP listeners, 5 egress sources, 2 egress pools" in (
        result.stdout)


async def test_init_defines_sources_pools_and_listeners(
    runtime: Runtime, reference: ReferencePolicy
) -> None:
    config = runtime.config
    assert sorted(config.spools) == ["data", "meta"]
    assert {name: str(source.source_address) for name, source in
            config.egress_sources.items()} == SOURCE_ADDRESSES
    assert sorted(config.egress_pools) == ["TenantOne", "TenantTwo"]
    assert [str(listener.listen) for listener in config.esmtp_listeners] == [
        f"127.0.0.1:{reference.smtp_port}"]


async def test_queue_config_for_a_known_tenant(runtime: Runtime) -> None:
    config = await runtime.hooks.get_queue_config("gmail.com", "TenantOne", None, None)
    assert isinstance(config, QueueConfig)
    assert config.egress_pool == "TenantOne"
    assert config.max_age == 300


async def test_queue_config_for_an_unknown_tenant_fails_naming_the_line(
    runtime: Runtime, reference: ReferencePolicy
) -> None:
    with pytest.raises(PolicyError) as info:
        await runtime.hooks.get_queue_config("gmail.com", "Nope", None, None)
    line = next(number for number, text in
                enumerate(reference.policy.read_text().splitlines(), 1)
                if "for k, v in pairs(src) do" in text)
    assert info.value.where == f"{reference.policy}:{line}"
    assert f"example-policy.lua:{line}: bad argument #1 to 'for iterator'" in str(info.value)


async def test_egress_path_for_the_gmail_site(runtime: Runtime) -> None:
    config = await runtime.hooks.get_egress_path_config("gmail.com", "ip-1", GMAIL_SITE)
    assert isinstance(config, EgressPathConfig)
    assert config.connection_limit.limit == 3
    assert config.max_deliveries_per_connection == 50
    # SHAPE_BY_SOURCE is keyed by table literals: Lua never finds { site, 'ip-1' }.
    assert config.max_message_rate is None


async def test_egress_path_goes_to_the_local_sink(
    runtime: Runtime, reference: ReferencePolicy
) -> None:
    config = await runtime.hooks.get_egress_path_config("yahoo.com", "ip-2", "unlisted.site")
    assert isinstance(config, EgressPathConfig)
    assert config.smtp_port == reference.sink_port
    assert not config.prohibited_hosts.contains("127.0.0.1")


async def test_egress_path_for_comcast_by_domain(runtime: Runtime) -> None:
    config = await runtime.hooks.get_egress_path_config("comcast.net", "ip-2", "comcast.site")
    assert isinstance(config, EgressPathConfig)
    assert config.connection_limit.limit == 2
    assert config.max_deliveries_per_connection == 100
    assert config.max_message_rate is not None
    assert (config.max_message_rate.limit, config.max_message_rate.period) == (1, 1)


async def test_message_received_sets_tenant_and_signs(
    runtime: Runtime, dns_server: TestDnsServer
) -> None:
    message = Message("alice@examplecorp.com", "bob@gmail.com", (
        b"From: Alice <alice@examplecorp.com>\r\n"
        b"To: bob@gmail.com\r\n"
        b"Subject: conformance\r\n"
        b"X-Tenant: TenantOne\r\n"
        b"\r\n"
        b"Hello from the reference policy.\r\n"
    ))
    await runtime.hooks.smtp_server_message_received(message, {})
    assert message.get_meta("tenant") == "TenantOne"
    signature = message.get_first_named_header_value("DKIM-Signature") or ""
    assert "d=examplecorp.com" in signature and "s=dkim1024" in signature
    assert dkim.verify(message.get_data(), dnsfunc=_txt_lookup(dns_server))


async def test_message_from_an_unsigned_domain_is_left_alone(runtime: Runtime) -> None:
    message = Message("news@elsewhere.example", "bob@gmail.com",
                      b"From: news@elsewhere.example\r\nSubject: x\r\n\r\nbody\r\n")
    await runtime.hooks.http_message_generated(message, {})
    assert message.get_first_named_header_value("DKIM-Signature") is None


def _txt_lookup(server: TestDnsServer) -> Callable[..., bytes]:
    """dkimpy's ``dnsfunc``, asking the test DNS server."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = server.port

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        answer = resolver.resolve(name.decode().rstrip("."), "TXT", lifetime=timeout)
        return b"".join(b"".join(record.strings) for record in answer)

    return lookup
