from __future__ import annotations

import re

import pytest

from kumocore import ConfigError
from kumocore.config import QueueConfig
from kumocore.config.protocols import MaildirProtocol, SmtpProtocol
from kumocore.throttle.spec import ThrottleSpec

MINUTE = 60.0


def test_defaults_are_kumomtas() -> None:
    queue = QueueConfig.from_options({})
    assert queue.retry_interval == 20 * MINUTE
    assert queue.max_retry_interval is None
    assert queue.max_age == 7 * 86400
    assert queue.egress_pool is None and queue.pool_name == "unspecified"
    assert queue.max_message_rate is None
    assert queue.protocol is None
    assert queue.reap_interval == 10 * MINUTE
    assert queue.refresh_interval == MINUTE
    assert queue.strategy == "SingletonTimerWheel"
    assert queue.shrink_policy == ()


def test_seed_policy_tenant_table() -> None:
    queue = QueueConfig.from_options({"egress_pool": "TenantOne", "max_age": "5 minutes"})
    assert queue.pool_name == "TenantOne"
    assert queue.max_age == 300


def test_retry_schedule_doubles_from_twenty_minutes() -> None:
    queue = QueueConfig.from_options({})
    delays = [queue.delay_for_attempt(n) / MINUTE for n in range(6)]
    assert delays == [20, 40, 80, 160, 320, 640]


def test_retry_schedule_is_capped_by_max_retry_interval() -> None:
    queue = QueueConfig.from_options({"retry_interval": "2s", "max_retry_interval": "8s"})
    assert [queue.delay_for_attempt(n) for n in range(6)] == [2, 4, 8, 8, 8, 8]
    capped = QueueConfig.from_options({"max_retry_interval": "1h"})
    assert capped.delay_for_attempt(2) == 3600


def test_huge_attempt_counts_do_not_overflow() -> None:
    assert QueueConfig.from_options({}).delay_for_attempt(100_000) > 7 * 86400


def test_jitter_is_a_twentieth_of_the_interval_capped_at_a_minute() -> None:
    assert QueueConfig.from_options({}).jitter_bound() == 30.0  # min(60, 60) / 2
    assert QueueConfig.from_options({"retry_interval": 20}).jitter_bound() == 0.5
    delay = QueueConfig.from_options({}).jittered_delay(0, uniform=lambda low, high: high)
    assert delay == 20 * MINUTE + 30


def test_attempts_are_inferred_from_age_by_replaying_the_schedule() -> None:
    queue = QueueConfig.from_options({})
    assert queue.infer_num_attempts(0) == 0
    assert queue.infer_num_attempts(20 * MINUTE) == 1
    assert queue.infer_num_attempts(60 * MINUTE - 1) == 1
    assert queue.infer_num_attempts(60 * MINUTE) == 2
    capped = QueueConfig.from_options({"retry_interval": 2, "max_retry_interval": 8})
    # 2, 4, 8, 8, 8 -> elapsed 2, 6, 14, 22, 30
    assert [capped.infer_num_attempts(age) for age in (1, 2, 13, 14, 30)] == [0, 1, 2, 3, 5]


def test_expiry() -> None:
    queue = QueueConfig.from_options({"max_age": "5 minutes"})
    assert not queue.is_expired(299) and queue.is_expired(300)


def test_rates_protocol_and_shrink_policy_parse_when_unsupported_are_allowed(
    allow_unsupported: None,
) -> None:
    queue = QueueConfig.from_options(
        {
            "max_message_rate": "100/h",
            "protocol": {"smtp": {"mx_list": ["mx.example.com"]}},
            "shrink_policy": [{"interval": "1m", "policy": "ShrinkData"}],
        }
    )
    assert queue.max_message_rate == ThrottleSpec(100, 3600)
    assert queue.shrink_policy[0].interval == 60
    assert queue.protocol is not None and queue.protocol.suffix == "smtp_client"
    assert QueueConfig.from_options(queue.to_dict()) == queue


@pytest.mark.parametrize(
    "options",
    [{"strategy": "SkipList"}, {"timerwheel_tick_interval": "1ms"}],
)
def test_unsupported_queue_options_are_refused_naming_the_option(
    options: dict[str, object],
) -> None:
    (name,) = options
    with pytest.raises(ConfigError, match=f"KumoMTA's option '{name}' is not supported by "
                       "kumocore yet"):
        QueueConfig.from_options(options)


def test_a_queue_message_rate_is_accepted_without_allow_unsupported() -> None:
    queue = QueueConfig.from_options({"max_message_rate": "100/h"})
    assert queue.max_message_rate == ThrottleSpec(100, 3600)


def test_unsupported_options_set_to_their_default_are_accepted() -> None:
    assert QueueConfig.from_options({"strategy": "SingletonTimerWheel"}).strategy == (
        "SingletonTimerWheel")


@pytest.mark.parametrize(
    ("protocol", "error"),
    [
        ({"xfer": {"target": "http://x"}}, "KumoMTA's protocol 'xfer' is not supported"),
        ({"custom_lua": {"batch_size": 2}}, "protocol.custom_lua.constructor"),
        ({"smtp": {"mx_list": ["[not-an-ip]"]}}, "'protocol.smtp.mx_list[1]'"),
        # The port after a bracketed address: 1-65535, and at most five digits.
        ({"smtp": {"mx_list": ["[10.0.0.1]:65536"]}}, "invalid port in '10.0.0.1'"),
        ({"smtp": {"mx_list": ["[10.0.0.1]:0"]}}, "invalid port in '10.0.0.1'"),
        ({"smtp": {"mx_list": ["[10.0.0.1]:123456"]}}, "invalid address '[10.0.0.1]:123456'"),
        ({"smtp": {"mx_lst": []}}, "unknown key 'protocol.smtp.mx_lst'"),
        ({"maildir_path": "/m", "dir_mode": -1}, "'protocol.dir_mode'"),
        ({"maildir_path": "/m/{{ local_part"}, "'protocol.maildir_path'"),
    ],
)
def test_protocols_kumocore_lacks_or_bad_protocol_tables_are_refused(
    protocol: dict[str, object], error: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(error)):
        QueueConfig.from_options({"protocol": protocol})


def test_mx_list_entries_in_kumomtas_forms_make_the_site_name() -> None:
    queue = QueueConfig.from_options({"protocol": {"smtp": {"mx_list": [
        "smart.host.local", "smart.host.local:2025", "[10.0.0.1]",
        {"name": "mx.example.com", "addr": "10.0.0.2:2025"}]}}})
    protocol = queue.protocol
    assert isinstance(protocol, SmtpProtocol)
    assert [(t.name, t.address, t.port) for t in protocol.mx_list] == [
        ("smart.host.local", None, None), ("smart.host.local", None, 2025),
        ("10.0.0.1", "10.0.0.1", None), ("mx.example.com", "10.0.0.2", 2025)]
    assert protocol.mx_list_site_name == (
        "mx_list:smart.host.local,smart.host.local:2025,[10.0.0.1],10.0.0.2:2025")


def test_maildir_protocol_keeps_path_and_modes() -> None:
    queue = QueueConfig.from_options(
        {"protocol": {"maildir_path": "/var/tmp/m", "dir_mode": 0o775, "file_mode": 0o664}})
    protocol = queue.protocol
    assert isinstance(protocol, MaildirProtocol)
    assert (protocol.path, protocol.dir_mode, protocol.file_mode) == ("/var/tmp/m", 0o775, 0o664)
    assert protocol.suffix == "maildir:/var/tmp/m"


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"retry_interval": "soon"}, "'retry_interval'"),
        ({"retry_interval": 0}, "'retry_interval'"),
        ({"max_retry_interval": "0s"}, "'max_retry_interval'"),
        ({"max_age": -5}, "'max_age'"),
        ({"egress_pool": 5}, "'egress_pool'"),
        ({"strategy": "Heap"}, "'strategy'"),
        ({"protocol": {}}, "'protocol'"),
        ({"protocol": "smtp"}, "'protocol'"),
        ({"max_message_rate": "1/hours"}, "'max_message_rate'"),
        ({"shrink_policy": [{"interval": "1m", "policy": "Shrink"}]}, "'shrink_policy[1].policy'"),
        ({"retry_interval_secs": 5}, "'retry_interval_secs'"),
    ],
)
def test_bad_values_name_the_key(options: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        QueueConfig.from_options(options)
    assert key in str(info.value)
    assert "kumo.make_queue_config" in str(info.value)


def test_negative_attempt_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        QueueConfig.from_options({}).delay_for_attempt(-1)
