from __future__ import annotations

import re
from typing import Any

import pytest

from kumocore import ConfigError
from kumocore.config import (
    CidrSet,
    EgressPathConfig,
    EgressPool,
    EgressPoolEntry,
    EgressSource,
)
from kumocore.throttle.spec import LimitSpec, ThrottleSpec


def test_egress_path_defaults_are_kumomtas() -> None:
    path = EgressPathConfig.from_options({})
    assert path.connection_limit == LimitSpec(32)
    assert path.additional_connection_limits == {}
    assert path.enable_tls == "Opportunistic"
    assert (path.enable_mta_sts, path.enable_dane) == (True, False)
    assert (path.enable_pipelining, path.enable_rset) == (True, True)
    assert path.max_ready == 1024
    assert path.consecutive_connection_failures_before_delay == 100
    assert path.smtp_port == 25
    assert path.max_message_rate is None and path.max_connection_rate is None
    assert path.source_selection_rate is None
    assert path.additional_message_rate_throttles == {}
    assert path.max_deliveries_per_connection == 1024
    assert path.max_recipients_per_batch == 100
    assert path.prohibited_hosts == CidrSet(["127.0.0.0/8", "::1", "0.0.0.0", "::"])
    assert len(path.skip_hosts) == 0
    assert path.ehlo_domain is None
    assert path.refresh_interval == 60
    assert path.use_lmtp is False
    assert path.allow_smtp_auth_plain_without_tls is False
    assert path.try_next_host_on_transport_error is False
    assert path.reconnect_strategy == "ConnectNextHost"
    timeouts = {
        name: getattr(path, f"{name}_timeout")
        for name in (
            "connect", "banner", "auth", "ehlo", "mail_from", "rcpt_to",
            "data", "data_dot", "rset", "idle", "starttls",
        )
    }  # fmt: skip
    assert timeouts == {
        "connect": 60, "banner": 60, "auth": 60, "ehlo": 300, "mail_from": 300,
        "rcpt_to": 300, "data": 300, "data_dot": 300, "rset": 5, "idle": 5, "starttls": 5,
    }  # fmt: skip


@pytest.mark.parametrize(
    "shape",
    [
        {"connection_limit": 3, "max_deliveries_per_connection": 50},
        {"connection_limit": 10},
        {"connection_limit": 10, "max_deliveries_per_connection": 20},
        {
            "connection_limit": 2,
            "max_deliveries_per_connection": 100,
            "max_message_rate": "1/second",
        },
        {"max_message_rate": "1000/hr"},
        {"max_message_rate": "10/second"},
    ],
)
def test_seed_policy_shaping_tables(shape: dict[str, Any]) -> None:
    path = EgressPathConfig.from_options(shape)
    if "connection_limit" in shape:
        assert path.connection_limit.limit == shape["connection_limit"]
    if "max_deliveries_per_connection" in shape:
        assert path.max_deliveries_per_connection == shape["max_deliveries_per_connection"]
    if "max_message_rate" in shape:
        assert path.max_message_rate == ThrottleSpec.parse(shape["max_message_rate"])
    assert EgressPathConfig.from_options(path.to_dict()) == path


def test_shaping_tables_merged_by_the_seed_policy() -> None:
    path = EgressPathConfig.from_options(
        {"connection_limit": 3, "max_deliveries_per_connection": 50, "max_message_rate": "1000/hr"}
    )
    assert path.max_message_rate == ThrottleSpec(1000, 3600)
    assert path.to_dict()["max_message_rate"] == "1000/h"
    assert path.to_dict()["connection_limit"] == {"limit": 3, "force_local": False}  # serde


def test_additional_limits_and_throttles_keep_their_names() -> None:
    path = EgressPathConfig.from_options(
        {
            "connection_limit": "local:10",
            "additional_connection_limits": {"shared-mx": 100},
            "additional_message_rate_throttles": {"tenant-a": "500/h", "tenant-b": "5/s"},
            "prohibited_hosts": [],
            "skip_hosts": ["192.0.2.0/24"],
            "enable_tls": "RequiredInsecure",
        }
    )
    assert path.connection_limit == LimitSpec(10, force_local=True)
    assert path.additional_connection_limits == {"shared-mx": LimitSpec(100)}
    assert list(path.additional_message_rate_throttles) == ["tenant-a", "tenant-b"]
    assert not path.prohibited_hosts.contains("127.0.0.1")
    assert path.skip_hosts.contains("192.0.2.5")
    assert path.tls_required and path.tls_allows_insecure
    assert EgressPathConfig.from_options(path.to_dict()) == path


@pytest.mark.parametrize(
    "options",
    [
        {"readyq_pool_name": "pool"},
        {"openssl_cipher_suites": "TLS_AES_256_GCM_SHA384"},
        {"aggressive_connection_opening": True},
        {"dispatcher_wakeup_strategy": "Relaxed"},
    ],
)
def test_unsupported_path_options_are_refused_naming_the_option(
    options: dict[str, object],
) -> None:
    (name,) = options
    with pytest.raises(
        ConfigError, match=f"KumoMTA's option '{name}' is not supported by kumocore yet"
    ):
        EgressPathConfig.from_options(options)


def test_unsupported_path_option_loads_ignored_with_allow_unsupported(
    allow_unsupported: None,
) -> None:
    from kumocore.config.unsupported import ignored_options

    config = EgressPathConfig.from_options({"readyq_pool_name": "pool"})
    assert config.readyq_pool_name == "pool"
    assert ignored_options()["readyq_pool_name"] == "kumo.make_egress_path"


def test_mta_sts_dane_and_proxy_options_load() -> None:
    EgressPathConfig.from_options({"enable_mta_sts": False, "enable_dane": False})
    EgressSource.from_options({"name": "p", "socks5_proxy_server": "127.0.0.1:1080",
                               "socks5_proxy_source_address": "127.0.0.1"})  # fmt: skip
    # The resolver check is kumo.make_egress_path's (tests/queue/test_dane.py).
    assert EgressPathConfig.from_options({"enable_dane": True}).enable_dane is True


def test_total_send_duration_sums_the_client_timeouts() -> None:
    # connect + auth, ehlo + mail_from + rcpt_to + data + data_dot, starttls + idle
    assert EgressPathConfig.from_options({}).total_message_send_duration() == 60 * 2 + 300 * 5 + 10


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"conection_limit": 3}, "unknown key 'conection_limit' for kumo.make_egress_path"),
        ({"connection_limit": 0}, "'connection_limit'"),
        ({"connection_limit": True}, "'connection_limit'"),
        ({"enable_tls": "Always"}, "'Opportunistic', 'OpportunisticInsecure', 'Required'"),
        ({"enable_tls": True}, "'enable_tls'"),
        ({"enable_mta_sts": "true"}, "'enable_mta_sts'"),
        ({"max_message_rate": "1/hours"}, "'max_message_rate'"),
        ({"max_connection_rate": "0/s"}, "'max_connection_rate'"),
        (
            {"additional_message_rate_throttles": {"x": "fast"}},
            "'additional_message_rate_throttles[\"x\"]'",
        ),
        ({"prohibited_hosts": ["127.0.0.1/8"]}, "'prohibited_hosts[1]'"),
        ({"smtp_port": 70000}, "'smtp_port'"),
        ({"idle_timeout": "soon"}, "'idle_timeout'"),
        ({"max_deliveries_per_connection": "50"}, "'max_deliveries_per_connection'"),
    ],
)
def test_bad_egress_path_values_name_the_key(options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        EgressPathConfig.from_options(options)
    assert key in str(info.value)


def test_egress_source_from_the_seed_policy() -> None:
    source = EgressSource.from_options(
        {"name": "ip-1", "source_address": "10.0.0.1", "ehlo_domain": "mta1.examplecorp.com"}
    )
    assert (source.name, source.source_address, source.ehlo_domain) == (
        "ip-1",
        "10.0.0.1",
        "mta1.examplecorp.com",
    )
    assert source.ttl == 60 and source.remote_port is None


def test_egress_source_proxies_and_suspension_rules_parse() -> None:
    source = EgressSource.from_options(
        {
            "name": "proxied",
            "socks5_proxy_server": "proxy.example.com:1080",
            "socks5_proxy_source_address": "10.0.0.1",
            "suspend_when_proxy_unhealthy": {"trigger": {"Threshold": "3/5m"}, "duration": "10m"},
            "suspend_when_unplumbed": {"duration": 60},
        }
    )
    unhealthy = source.suspend_when_proxy_unhealthy
    assert unhealthy is not None and unhealthy.trigger == ThrottleSpec(3, 300)
    assert unhealthy.duration == 600
    assert source.suspend_when_unplumbed is not None
    assert source.suspend_when_unplumbed.trigger == "Immediate"
    assert EgressSource.from_options(source.to_dict()) == source


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({}, "missing required key 'name'"),
        ({"name": "a", "source_address": "10.0.0.300"}, "'source_address'"),
        ({"name": "a", "remote_port": 0}, "'remote_port'"),
        ({"name": "a", "ha_proxy_server": "10.0.0.1"}, "'ha_proxy_server'"),
        ({"name": "a", "suspend_when_unplumbed": {}}, "'suspend_when_unplumbed.duration'"),
        (
            {"name": "a", "suspend_when_unplumbed": {"duration": 1, "trigger": "Later"}},
            "'suspend_when_unplumbed.trigger'",
        ),
        ({"name": "a", "ttl": "forever"}, "'ttl'"),
    ],
)
def test_bad_egress_source_values_name_the_key(options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        EgressSource.from_options(options)
    assert key in str(info.value)


def test_egress_pool_from_the_seed_policy() -> None:
    pool = EgressPool.from_options(
        {"name": "TenantOne", "entries": [{"name": "ip-3"}, {"name": "ip-4"}, {"name": "ip-5"}]}
    )
    assert pool.entries == (
        EgressPoolEntry(name="ip-3"),
        EgressPoolEntry(name="ip-4"),
        EgressPoolEntry(name="ip-5"),
    )
    assert all(entry.weight == 1 for entry in pool.entries)
    assert pool.ttl == 60
    assert EgressPool.from_options(pool.to_dict()) == pool


def test_unknown_field_inside_a_pool_entry_is_named() -> None:
    with pytest.raises(ConfigError) as info:
        EgressPool.from_options(
            {"name": "p", "entries": [{"name": "a"}, {"name": "b", "wieght": 2}]},
            function="kumo.define_egress_pool",
        )
    assert str(info.value) == (
        "unknown key 'entries[2].wieght' for kumo.define_egress_pool (did you mean 'weight'?); "
        "allowed: name, weight"
    )


@pytest.mark.parametrize(
    ("entries", "key"),
    [
        ([{"weight": 2}], "'entries[1].name'"),
        ([{"name": "a", "weight": -1}], "'entries[1].weight'"),
        ("ip-1", "'entries'"),
    ],
)
def test_bad_pool_entries_name_the_key(entries: object, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        EgressPool.from_options({"name": "p", "entries": entries})
    assert key in str(info.value)


@pytest.mark.parametrize(
    ("source", "error"),
    [
        (
            {"key_dta": "s3cret"},
            "unknown key 'smtp_auth_plain_password.key_dta' for "
            "kumo.make_egress_path (did you mean 'key_data'?)",
        ),
        (
            {"event_name": "get_password"},
            "event-based key sources (event_name = ...) are not supported",
        ),
        (
            {"key_data": 5},
            "'smtp_auth_plain_password.key_data' in kumo.make_egress_path: expected a string",
        ),
    ],
)
def test_a_key_source_kumocore_cannot_read_is_refused_when_the_policy_loads(
    source: dict[str, object], error: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(error)):
        EgressPathConfig.from_options({"smtp_auth_plain_password": source})


def test_a_file_name_or_key_data_is_a_key_source() -> None:
    for source in ("/etc/kumocore/smtp-password", {"key_data": "s3cret"}):
        assert (
            EgressPathConfig.from_options(
                {"smtp_auth_plain_password": source}
            ).smtp_auth_plain_password
            == source
        )


def test_socks5_proxy_bind_source_is_serialised_only_when_turned_off() -> None:
    common = {"name": "s", "socks5_proxy_server": "127.0.0.1:1080",
              "socks5_proxy_source_address": "127.0.10.1"}  # fmt: skip
    assert "socks5_proxy_bind_source" not in EgressSource.from_options(common).to_dict()
    off = EgressSource.from_options({**common, "socks5_proxy_bind_source": False})
    assert off.to_dict()["socks5_proxy_bind_source"] is False
    assert EgressSource.from_options(off.to_dict()) == off
