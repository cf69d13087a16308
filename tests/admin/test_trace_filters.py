"""The trace filters: which connection meta each request field excludes."""

from __future__ import annotations

import pytest

from kumocore.trace.filters import (
    SEEN_LIMIT,
    ClientFilter,
    ServerFilter,
    TraceRequestError,
    address_of,
)


def test_addresses_are_read_from_ip_port_bracketed_ipv6_and_bare_forms() -> None:
    meta = {"a": "10.0.0.1:25", "b": "[2001:db8::1]:587", "c": "2001:db8::2", "d": 5}
    assert [address_of(meta, k) for k in "abcde"] == [
        "10.0.0.1", "2001:db8::1", "2001:db8::2", None, None]  # fmt: skip


def test_source_addr_keeps_matching_peers_and_events_without_a_peer() -> None:
    only = ServerFilter.parse({"source_addr": ["10.0.0.0/8", "2001:db8::/32"]})
    assert only({"received_from": "10.1.2.3:4000"})
    assert only({"received_from": "[2001:db8::5]:4000"})
    assert not only({"received_from": "192.0.2.1:4000"})
    assert only(None) and only({})  # a lag notice, a meta without the address
    assert ServerFilter.parse({"source_addr": None})({"received_from": "192.0.2.1:1"})


def test_a_client_property_excludes_only_once_the_session_has_it() -> None:
    wanted = ClientFilter.parse({"domain": ["example.com"], "rcpt_to": ["a@example.com"],
                                 "ready_queue": ["q1"], "mx_addr": ["127.0.0.0/8"]})  # fmt: skip
    assert wanted({"id": "s"})  # nothing known yet
    assert wanted({"domain": "example.com", "recipient": ["a@example.com"]})
    assert not wanted({"domain": "other.example"})
    assert not wanted({"recipient": ["b@example.com"]})
    assert not wanted({"ready_queue_name": "q2"})
    assert not wanted({"mx_address": "192.0.2.1"})
    assert wanted({"mx_address": "127.0.0.1", "ready_queue_name": "q1"})


@pytest.mark.parametrize("body", [
    {"domain": "example.com"}, {"domain": [1]}, {"mx_addr": "10.0.0.0/8"},
    {"mx_addr": ["10.0.0.1/8"]}, {"terse": 1}, {"queue": ["x"]}, "x",
])  # fmt: skip
def test_a_client_filter_that_cannot_be_used_is_refused(body: object) -> None:
    with pytest.raises(TraceRequestError):
        ClientFilter.parse(body)


def test_the_server_filter_remembers_a_bounded_number_of_peers() -> None:
    only = ServerFilter.parse({"source_addr": ["10.0.0.0/16"]})
    answers = [only({"received_from": f"10.{n // 256 % 4}.{n % 256}.1:{n}"})
               for n in range(SEEN_LIMIT + 100)]  # fmt: skip
    assert len(only._seen) <= SEEN_LIMIT
    assert answers == [n // 256 % 4 == 0 for n in range(SEEN_LIMIT + 100)]
