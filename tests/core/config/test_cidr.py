from __future__ import annotations

import ipaddress

import pytest

from kumocore import ConfigError
from kumocore.config import CidrSet, split_host_port

LOOPBACK = CidrSet(["127.0.0.1", "::1"])


def test_network_with_host_bits_set_is_refused_like_kumomta() -> None:
    assert CidrSet(["192.168.1.0/24"]).contains("192.168.1.77")
    with pytest.raises(ConfigError, match=r"192\.168\.1\.1/24.*host bits set"):
        CidrSet(["192.168.1.1/24"])


@pytest.mark.parametrize("bad", ["not-an-ip", "10.0.0.0/33", "", 42])
def test_malformed_entries_are_refused(bad: object) -> None:
    with pytest.raises(ConfigError):
        CidrSet([bad])  # type: ignore[list-item]


def test_a_lone_string_is_not_taken_for_a_list_of_characters() -> None:
    with pytest.raises(ConfigError, match="list"):
        CidrSet("127.0.0.1")


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", False),
        ("::1", True),
        ("::2", False),
        ("::ffff:127.0.0.1", True),
        ("::ffff:127.0.0.2", False),
        (ipaddress.ip_address("127.0.0.1"), True),
        (ipaddress.ip_address("::1"), True),
    ],
)
def test_loopback_membership(ip: str, expected: bool) -> None:
    assert LOOPBACK.contains(ip) is expected
    assert (ip in LOOPBACK) is expected


def test_ipv6_networks_and_zones() -> None:
    nets = CidrSet(["2001:db8::/32", "fe80::/10"])
    assert nets.contains("2001:db8:1::5")
    assert not nets.contains("2001:db9::1")
    assert nets.contains("fe80::1%eth0")
    assert not nets.contains("10.0.0.1")


def test_ipv4_mapped_entries_match_plain_ipv4_peers() -> None:
    nets = CidrSet(["::ffff:10.0.0.0/104"])
    assert nets.contains("10.1.2.3")
    assert nets.contains("::ffff:10.1.2.3")
    assert not nets.contains("11.0.0.1")


def test_everything_networks() -> None:
    assert CidrSet(["0.0.0.0/0"]).contains("203.0.113.9")
    assert CidrSet(["::/0"]).contains("2001:db8::1")


def test_empty_set_contains_nothing() -> None:
    assert not CidrSet().contains("127.0.0.1")
    assert len(CidrSet()) == 0


def test_non_ip_peer_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="not an IP address"):
        LOOPBACK.contains("localhost")


def test_entries_round_trip_as_written() -> None:
    nets = CidrSet(["127.0.0.1", "10.0.0.0/8", "::1", "10.0.0.0/8"])
    assert nets.to_list() == ["127.0.0.1", "10.0.0.0/8", "::1"]
    assert CidrSet(nets.to_list()) == nets
    assert hash(CidrSet(["::1", "127.0.0.1"])) == hash(LOOPBACK)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("0.0.0.0:25", ("0.0.0.0", 25)),
        ("[::1]:25", ("::1", 25)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("localhost:2025", ("localhost", 2025)),
        ("mx.example.com.:25", ("mx.example.com.", 25)),
        ("_proxy.example.com:1080", ("_proxy.example.com", 1080)),
        ("müller.example:25", ("müller.example", 25)),
    ],
)
def test_split_host_port(address: str, expected: tuple[str, int]) -> None:
    assert split_host_port(address) == expected


@pytest.mark.parametrize("bad", ["::1:25", "127.0.0.1", "127.0.0.1:99999", ":25", "[nope]:25"])
def test_split_host_port_refuses_ambiguous_or_bad_addresses(bad: str) -> None:
    with pytest.raises(ValueError):
        split_host_port(bad)


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("not a valid hostname:5000", "unrecognized character ' '"),
        ("a..example.com:25", 'malformed label ""'),
        ("x" * 64 + ".example.com:25", "malformed label"),
        ("proxy/1.example.com:25", "unrecognized character '/'"),
    ],
)
def test_a_host_name_that_is_not_a_dns_name_is_refused_when_the_policy_loads(
    bad: str, why: str,
) -> None:
    # As KumoMTA checks a socks5_proxy_server (its sources helper's self-test expects
    # "invalid hostname"), instead of failing at the first connection through it.
    with pytest.raises(ValueError, match="invalid hostname") as refused:
        split_host_port(bad)
    assert why in str(refused.value)
