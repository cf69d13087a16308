"""kumo.set_lruttl_cache_capacity: KumoMTA's cache names size kumocore's caches.

Each test fills a cache past the capacity a policy set and counts what it holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kumocore_lua_policy.stdlib.plumbing import GlobCache

from bench.common.dns_server import TestDnsServer
from kumocore.dns import Resolver
from kumocore.errors import ConfigError
from kumocore.http.acl import AccessControlList
from kumocore.http.acl_check import AccessControl
from kumocore.node import cache_capacity
from kumocore.node.cache_capacity import NamedLru, set_capacity
from tests.plugins.lua_policy.support import Recorder, load


@pytest.fixture(autouse=True)
def default_capacities() -> Iterator[None]:
    yield
    cache_capacity.reset()  # capacities are per process: leave them as found


async def test_a_policy_bounds_the_mx_cache(tmp_path: Path, dns_server: TestDnsServer) -> None:
    await load(tmp_path, "require('kumo').set_lruttl_cache_capacity('dns_resolver_mx', 3)")
    resolver = Resolver([dns_server.address], timeout=0.5)
    domains = [f"d{i}.example" for i in range(6)]
    for domain in domains:
        dns_server.set_records(domain, "MX", [(10, f"mx.{domain}")])
        await resolver.lookup_mx(domain)
    assert list(resolver._built_mx) == domains[3:]  # the three most recent
    set_capacity("dns_resolver_mx", 1)  # lowering it trims a live cache at once
    assert list(resolver._built_mx) == domains[5:]


async def test_a_recently_read_mx_entry_outlives_older_ones(dns_server: TestDnsServer) -> None:
    set_capacity("dns_resolver_mx", 2)
    resolver = Resolver([dns_server.address], timeout=0.5)
    for domain in ("a.example", "b.example", "c.example"):
        dns_server.set_records(domain, "MX", [(10, f"mx.{domain}")])
    await resolver.lookup_mx("a.example")
    await resolver.lookup_mx("b.example")
    await resolver.lookup_mx("a.example")  # a hit: a is now the most recently used
    await resolver.lookup_mx("c.example")
    assert list(resolver._built_mx) == ["a.example", "c.example"]


async def test_the_acl_caches_hold_at_most_their_capacity() -> None:
    set_capacity("acl_definition", 2)
    set_capacity("acl_check", 5)

    async def provider(resource: str) -> tuple[bool, AccessControlList | None]:
        return True, None

    access = AccessControl(provider)
    for index in range(6):
        await access.definition(f"resource-{index}")
    assert len(access.definitions) == 2
    assert access.checks.capacity == 5
    set_capacity("acl_check", 0)
    assert access.checks.capacity == 0


def test_the_glob_cache_holds_at_most_its_capacity(tmp_path: Path) -> None:
    set_capacity("mod_filesystem_glob_cache", 2)
    globs = GlobCache()
    for index in range(5):
        (tmp_path / f"f{index}.txt").write_text("x")
        assert globs.glob(f"f{index}.txt", str(tmp_path)) == [f"f{index}.txt"]
    assert len(globs._cache) == 2


def test_a_named_cache_made_after_the_call_starts_at_the_new_capacity() -> None:
    set_capacity("mod_filesystem_glob_cache", 1)
    cache: NamedLru[str, int] = NamedLru("mod_filesystem_glob_cache")
    cache["a"], cache["b"] = 1, 2
    assert dict(cache) == {"b": 2}


async def test_an_unknown_name_fails_with_kumomtas_error(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(
        tmp_path,
        """\
        local kumo = require 'kumo'
        local ok, err = pcall(kumo.set_lruttl_cache_capacity, 'no_such_cache', 10)
        kumo.test.mark(tostring(err))
    """,
        recorder=recorder,
    )
    [err] = recorder.marks
    assert (
        "could not set capacity for cache no_such_cache as that is not a pre-defined "
        "lruttl cache name"
    ) in err


@pytest.mark.parametrize("name", sorted(cache_capacity.UNSIZED))
def test_a_kumomta_cache_kumocore_cannot_size_is_an_error_saying_why(name: str) -> None:
    with pytest.raises(ConfigError, match=f"kumocore cannot set the capacity of {name}: "):
        set_capacity(name, 10)


@pytest.mark.parametrize("capacity", [-1, 1.5, "10", True])
def test_a_capacity_that_is_not_a_whole_number_is_refused(capacity: object) -> None:
    with pytest.raises(ConfigError, match="capacity must be a whole number >= 0"):
        set_capacity("dns_resolver_mx", capacity)
    assert (
        cache_capacity.capacity_of("dns_resolver_mx") == cache_capacity.DEFAULTS["dns_resolver_mx"]
    )


def test_the_dkim_signer_cache_holds_at_most_its_capacity(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from kumocore.dkim.policy import SignerCache

    key = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    cache = SignerCache()
    assert cache.capacity == 1024  # KumoMTA's default
    for n in range(6):
        options = {"domain": f"d{n}.example", "selector": "s", "headers": ["From"],
                   "key": {"key_data": key.decode()}}
        cache.get("ed25519-sha256", options)
    assert len(cache) == 6
    set_capacity("dkim_signer_cache", 4)  # trims the live cache at once
    assert len(cache) == 4 and SignerCache().capacity == 4


def test_the_broken_tls_sites_are_at_most_their_capacity() -> None:
    from kumocore.config import EgressPathConfig
    from kumocore.delivery.broken_tls import BrokenTls

    config = EgressPathConfig.from_options({"remember_broken_tls": "1h"})
    set_capacity("smtp_dispatcher_broken_tls", 3)
    broken = BrokenTls()
    for n in range(5):
        broken.failed(f"site{n}", config)
    # The last three failures are remembered; the first two made room (it had no bound).
    assert [broken.is_broken(f"site{n}") for n in range(5)] == [False, False, True, True, True]
