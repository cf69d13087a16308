"""The egress and queue configs' ``to_dict`` is KumoMTA's serde form, and loads back.

Expected texts are humantime's and KumoMTA's, worked out by hand."""

from __future__ import annotations

import pytest

from kumocore import ConfigError
from kumocore.config import CidrSet, EgressPathConfig, EgressSource, QueueConfig
from kumocore.throttle.spec import LimitSpec


@pytest.mark.parametrize(
    ("written", "serialised"),
    [
        (90, "1m 30s"),
        ("7 days", "7days"),
        (1.5, "1s 500ms"),
        (0.000250, "250us"),
        ("36h", "1day 12h"),
        # humantime's month is 30.44 days (2630016 s), its year 365.25 days.
        ("400 days", "1year 1month 4days 7h 26m 24s"),
    ],
)
def test_durations_are_humantime_text_and_load_back(written: object, serialised: str) -> None:
    queue = QueueConfig.from_options({"max_age": written})
    assert queue.to_dict()["max_age"] == serialised
    assert QueueConfig.from_options(queue.to_dict()) == queue


def test_a_limit_is_the_struct_and_the_struct_loads() -> None:
    path = EgressPathConfig.from_options({"connection_limit": {"limit": 7, "force_local": True}})
    assert path.connection_limit == LimitSpec(7, force_local=True)
    assert path.to_dict()["connection_limit"] == {"limit": 7, "force_local": True}
    bare = EgressPathConfig.from_options({"connection_limit": {"limit": 3.0}})
    assert bare.connection_limit == LimitSpec(3)


@pytest.mark.parametrize(
    ("limit", "problem"),
    [
        ({"limit": 0}, "limit must be 1 or larger"),
        ({"limit": "3"}, "expected a whole number"),
        ({"limit": 3, "force_local": "yes"}, "expected true or false"),
        ({"limit": 3, "local": True}, "unknown key 'connection_limit.local'"),
    ],
)
def test_a_bad_limit_struct_is_refused_naming_the_key(limit: object, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        EgressPathConfig.from_options({"connection_limit": limit})


def test_cidr_lists_are_written_as_kumomtas_set_holds_them() -> None:
    hosts = ["::1", "192.0.2.0/25", "10.0.0.9", "192.0.2.128/25", "::", "10.0.0.0/8"]
    path = EgressPathConfig.from_options({"skip_hosts": hosts})
    assert path.to_dict()["skip_hosts"] == ["10.0.0.0/8", "192.0.2.0/24", "::/127"]
    # Sets holding the same addresses are equal however written, so the form loads back.
    assert path.skip_hosts == CidrSet(["10.0.0.0/8", "192.0.2.0/24", "::/127"])
    assert path.skip_hosts != CidrSet(["10.0.0.0/8", "192.0.2.0/24", "::"])
    assert EgressPathConfig.from_options(path.to_dict()) == path


def test_options_kumomta_does_not_serialise_are_left_out() -> None:
    written = EgressPathConfig.from_options({}).to_dict()
    assert "openssl_options" not in written and "rustls_cipher_suites" not in written


def test_source_fields_are_in_kumomtas_order() -> None:
    source = EgressSource.from_options({"name": "ip-1", "source_address": "192.0.2.1"})
    assert list(source.to_dict())[:3] == ["name", "ehlo_domain", "source_address"]
    assert source.to_dict()["ttl"] == "1m"
