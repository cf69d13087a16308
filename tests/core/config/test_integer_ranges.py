"""Numbers in config tables are held to the range of the Rust field KumoMTA deserialises
them into (``usize``/``u64`` counts and sizes, ``u16`` ports, ``u32`` weights): a value out
of range, negative or fractional is a load error naming the field, as serde's is."""

from __future__ import annotations

from typing import Any

import pytest

from kumocore import ConfigError
from kumocore.config import (
    EgressPathConfig,
    EgressPoolEntry,
    EgressSource,
    EsmtpListenerConfig,
    QueueConfig,
)
from kumocore.config.lua_options import lua_options
from kumocore.throttle.spec import LimitSpec, ThrottleSpec

U64_MAX = 2**64 - 1

#: (config class, options besides the one under test, field) for usize/u64 fields.
USIZE_FIELDS: list[tuple[type[Any], dict[str, Any], str]] = [
    (EgressPathConfig, {}, "max_ready"),
    (EgressPathConfig, {}, "max_deliveries_per_connection"),
    (EgressPathConfig, {}, "max_recipients_per_batch"),
    (EgressPathConfig, {}, "consecutive_connection_failures_before_delay"),
    (EsmtpListenerConfig, {}, "max_connections"),
    (EsmtpListenerConfig, {}, "max_messages_per_connection"),
    (EsmtpListenerConfig, {}, "max_recipients_per_message"),
    (EsmtpListenerConfig, {}, "line_length_hard_limit"),
]


@pytest.mark.parametrize(("cls", "base", "field"), USIZE_FIELDS)
def test_a_usize_field_takes_its_largest_value(
    cls: type[Any], base: dict[str, Any], field: str
) -> None:
    config = cls.from_options({**base, field: U64_MAX})
    assert getattr(config, field) == U64_MAX


@pytest.mark.parametrize("bad", [U64_MAX + 1, 2.0**70, -1, 1.5, float("inf")])
@pytest.mark.parametrize(("cls", "base", "field"), USIZE_FIELDS)
def test_a_usize_field_refuses_values_out_of_range_naming_the_field(
    cls: type[Any], base: dict[str, Any], field: str, bad: Any
) -> None:
    with pytest.raises(
        ConfigError,
        match=rf"'{field}' in {cls.options_for}: expected a whole "
        rf"number from \d+ to {U64_MAX}",
    ):
        cls.from_options({**base, field: bad})


@pytest.mark.parametrize(
    ("value", "expected"),
    [(65535, 65535), (65536, None), (-1, None), (25.5, None), (2.0**70, None)],
)
def test_a_u16_port_is_bounded_by_its_type(value: Any, expected: int | None) -> None:
    if expected is None:
        with pytest.raises(ConfigError, match=r"'remote_port' in kumo\.make_egress_source"):
            EgressSource.from_options({"name": "s", "remote_port": value})
    else:
        assert EgressSource.from_options({"name": "s", "remote_port": value}).remote_port == 65535


def test_a_u32_pool_weight_is_bounded_by_its_type() -> None:
    assert EgressPoolEntry.from_options({"name": "s", "weight": 2**32 - 1}).weight == 2**32 - 1
    with pytest.raises(ConfigError, match="'weight'"):
        EgressPoolEntry.from_options({"name": "s", "weight": 2**32})


def test_connection_limit_takes_a_u64_and_refuses_floats_naming_the_field() -> None:
    assert EgressPathConfig.from_options(
        {"connection_limit": U64_MAX}
    ).connection_limit == LimitSpec(U64_MAX)
    for bad in (U64_MAX + 1, 2.0**70, 1.5, -1, 0, str(U64_MAX + 1)):
        with pytest.raises(ConfigError, match=r"'connection_limit' in kumo\.make_egress_path"):
            EgressPathConfig.from_options({"connection_limit": bad})
    with pytest.raises(ConfigError, match=r"additional_connection_limits\[\"x\"\]"):
        EgressPathConfig.from_options({"additional_connection_limits": {"x": U64_MAX + 1}})


def test_the_serialised_limit_struct_is_bounded_too() -> None:
    with pytest.raises(ConfigError, match=r"'connection_limit.limit'.*too large"):
        EgressPathConfig.from_options({"connection_limit": {"limit": U64_MAX + 1}})


@pytest.mark.parametrize(
    "text", [f"{U64_MAX}/s", f"1/{U64_MAX}s", f"1/s,max_burst={U64_MAX}", f"0{U64_MAX}/s"]
)
def test_a_throttle_spec_takes_u64_numbers(text: str) -> None:
    spec = ThrottleSpec.parse(text)
    assert U64_MAX in (spec.limit, spec.period, spec.max_burst)


@pytest.mark.parametrize(
    "text",
    [
        f"{U64_MAX + 1}/s",
        f"1/{U64_MAX + 1}s",
        f"1/{U64_MAX}m",
        f"1/s,max_burst={U64_MAX + 1}",
        "1" + "0" * 5000 + "/s",
    ],
)
def test_a_throttle_spec_refuses_numbers_beyond_u64_naming_the_field(text: str) -> None:
    with pytest.raises(
        ConfigError,
        match=r"'max_message_rate' in kumo\.make_queue_config: "
        r"invalid throttle spec .*(too big|too large)",
    ):
        QueueConfig.from_options({"max_message_rate": text})


def test_a_size_is_bounded_by_usize() -> None:
    config = EsmtpListenerConfig.from_options({"max_message_size": U64_MAX})
    assert config.max_message_size == U64_MAX
    for bad in (U64_MAX + 1, 2.0**70, "20000000000000000000000 GiB", -1, 1.5):
        with pytest.raises(ConfigError, match=r"'max_message_size' in kumo\.start_esmtp_listener"):
            EsmtpListenerConfig.from_options({"max_message_size": bad})


def test_custom_lua_batch_sizes_are_bounded_by_usize() -> None:
    assert lua_options({"constructor": "x", "batch_size": U64_MAX}).batch_size == U64_MAX
    for bad in (U64_MAX + 1, 2.0**70, 0, 1.5):
        with pytest.raises(ConfigError, match=r"protocol\.custom_lua\.batch_size"):
            lua_options({"constructor": "x", "batch_size": bad})
