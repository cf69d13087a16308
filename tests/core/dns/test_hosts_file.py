"""The hosts file answers address lookups before DNS, as KumoMTA's resolver does
(``kumo.dns.lookup_addr 'localhost'`` is ``127.0.0.1, ::1``; an ``mx_list`` name listed
there needs no DNS record); it is read again when it changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.common.dns_server import TestDnsServer
from kumocore.dns import Resolver
from kumocore.dns.hosts import HostsFile, parse_hosts


def test_a_hosts_file_is_parsed_ipv4_first_comments_and_junk_ignored() -> None:
    text = ("::1 localhost ip6-localhost\n127.0.0.1\tlocalhost  # loopback\n"
            "# a comment\n10.0.0.9 vm vm.lan.\nnot-an-ip name\nfe80::1%eth0 link\n")
    assert parse_hosts(text) == {
        "localhost": ["127.0.0.1", "::1"], "ip6-localhost": ["::1"],
        "vm": ["10.0.0.9"], "vm.lan": ["10.0.0.9"], "link": ["fe80::1"]}


async def test_names_in_the_hosts_file_are_answered_before_dns(
    dns_server: TestDnsServer, tmp_path: Path
) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("10.0.0.9 relay.internal\n")
    now = [0.0]
    resolver = Resolver([dns_server.address], timeout=0.5,
                        hosts=HostsFile(str(hosts), clock=lambda: now[0]))
    dns_server.set_records("relay.internal", "A", ["192.0.2.1"])
    dns_server.set_records("other.example", "A", ["192.0.2.2"])
    assert await resolver.lookup_addr("relay.internal.") == ["10.0.0.9"]
    assert await resolver.resolve_ips("Relay.Internal") == ["10.0.0.9"]
    assert await resolver.lookup_addr("other.example") == ["192.0.2.2"]  # not listed: DNS
    hosts.write_text("10.0.0.10 relay.internal\n")
    os.utime(hosts, (1, 1))  # a new modification time, whatever the clock's resolution
    now[0] += 10
    assert await resolver.lookup_addr("relay.internal") == ["10.0.0.10"]


def test_a_missing_hosts_file_means_dns_alone(tmp_path: Path) -> None:
    assert HostsFile(str(tmp_path / "none")).lookup("localhost") is None


def test_only_the_first_max_bytes_of_a_hosts_file_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kumocore.dns import hosts as hosts_module

    monkeypatch.setattr(hosts_module, "MAX_BYTES", 64)
    path = tmp_path / "hosts"
    path.write_text("10.0.0.1 first.internal\n" + "# padding\n" * 10 + "10.0.0.2 late.internal\n")
    hosts = HostsFile(str(path))
    assert hosts.lookup("first.internal") == ["10.0.0.1"]
    assert hosts.lookup("late.internal") is None  # past MAX_BYTES: not read
