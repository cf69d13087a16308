"""The generic machinery, through a small options class of its own."""

from __future__ import annotations

from typing import Any

import pytest

from kumocore import ConfigError
from kumocore.config import CidrSet, Options, option
from kumocore.config.converters import (
    BOOL,
    CIDRS,
    DURATION,
    LIMIT,
    STRING,
    STRINGS,
    TABLE,
    THROTTLE,
    enum,
    integer,
    list_of,
    map_of,
)
from kumocore.config.options import nested
from kumocore.throttle.spec import LimitSpec, ThrottleSpec


class Inner(Options, options_for="inner"):
    name: str = option(STRING)
    weight: int = option(integer(0, 10), default=1)


class Sample(Options, options_for="kumo.make_sample"):
    name: str = option(STRING)
    enabled: bool = option(BOOL, default=False)
    count: int = option(integer(1, 100), default=5)
    mode: str = option(enum("Fast", "Slow"), default="Fast")
    timeout: float = option(DURATION, default="1m")
    hosts: CidrSet = option(CIDRS, default=["127.0.0.1"])
    names: tuple[str, ...] = option(STRINGS, default=[])
    extra: dict[str, Any] = option(TABLE, default={})
    rate: ThrottleSpec | None = option(THROTTLE, default=None)
    limit: LimitSpec = option(LIMIT, default=3)
    inners: tuple[Inner, ...] = option(list_of(nested(Inner)), default=[])
    by_name: dict[str, Inner] = option(map_of(nested(Inner)), default={})


def error_for(options: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        Sample.from_options(options)
    return str(info.value)


def test_defaults_are_written_in_policy_form_and_converted() -> None:
    sample = Sample.from_options({"name": "x"})
    assert sample.timeout == 60.0
    assert sample.hosts == CidrSet(["127.0.0.1"])
    assert sample.limit == LimitSpec(3)
    assert sample.names == () and sample.extra == {} and sample.rate is None


def test_mutable_defaults_are_not_shared_between_instances() -> None:
    first, second = Sample.from_options({"name": "a"}), Sample.from_options({"name": "b"})
    assert first.extra is not second.extra


def test_unknown_key_is_refused_listing_the_allowed_keys() -> None:
    message = error_for({"name": "x", "foo": 1})
    assert message == (
        "unknown key 'foo' for kumo.make_sample; allowed: by_name, count, enabled, extra, "
        "hosts, inners, limit, mode, name, names, rate, timeout"
    )


def test_missing_required_key_is_named() -> None:
    assert error_for({}) == "missing required key 'name' for kumo.make_sample"


def test_nil_means_not_given() -> None:
    assert Sample.from_options({"name": "x", "count": None}).count == 5
    assert error_for({"name": None}) == "missing required key 'name' for kumo.make_sample"


@pytest.mark.parametrize("truthy", ["true", "yes", 1, 0])
def test_bool_fields_take_only_booleans(truthy: object) -> None:
    assert "'enabled'" in error_for({"name": "x", "enabled": truthy})


def test_bool_is_not_a_number() -> None:
    assert "'count'" in error_for({"name": "x", "count": True})


def test_integers_are_range_checked_and_lua_floats_accepted() -> None:
    assert Sample.from_options({"name": "x", "count": 7.0}).count == 7
    assert "from 1 to 100" in error_for({"name": "x", "count": 101})
    assert "'count'" in error_for({"name": "x", "count": 2.5})


def test_bad_enum_lists_the_allowed_values() -> None:
    message = error_for({"name": "x", "mode": "fast"})
    assert message == (
        "invalid value for 'mode' in kumo.make_sample: expected one of 'Fast', 'Slow', got 'fast'"
    )


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"timeout": "soon"}, "'timeout'"),
        ({"hosts": ["10.0.0.1/8"]}, "'hosts[1]'"),
        ({"hosts": "127.0.0.1"}, "'hosts'"),
        ({"names": ["a", 2]}, "'names[2]'"),
        ({"extra": "nope"}, "'extra'"),
        ({"rate": "10/fortnight"}, "'rate'"),
        ({"rate": 10}, "'rate'"),
        ({"limit": "lots"}, "'limit'"),
        ({"inners": [{"name": "a"}, {"name": "b", "weight": 11}]}, "'inners[2].weight'"),
        ({"by_name": {"a.com": {}}}, "'by_name[\"a.com\"].name'"),
        ({"name": 5}, "'name'"),
    ],
)
def test_every_bad_value_names_its_key(options: dict[str, Any], key: str) -> None:
    assert key in error_for({"name": "x", **options})


def test_unknown_key_in_a_nested_table_is_named_with_its_path() -> None:
    message = error_for({"name": "x", "inners": [{"name": "a", "wieght": 2}]})
    assert message == (
        "unknown key 'inners[1].wieght' for kumo.make_sample (did you mean "
        "'weight'?); allowed: name, weight"
    )


def test_empty_lua_table_is_accepted_as_list_or_table() -> None:
    sample = Sample.from_options({"name": "x", "names": {}, "extra": [], "hosts": {}})
    assert sample.names == () and sample.extra == {} and len(sample.hosts) == 0


def test_options_must_be_a_table() -> None:
    with pytest.raises(ConfigError, match=r"options of kumo\.make_sample"):
        Sample.from_options("name=x")  # type: ignore[arg-type]


def test_caller_can_name_itself_in_errors() -> None:
    with pytest.raises(ConfigError, match=r"for kumo\.define_sample"):
        Sample.from_options({}, function="kumo.define_sample")


def test_to_dict_round_trips() -> None:
    sample = Sample.from_options(
        {
            "name": "x",
            "enabled": True,
            "timeout": "1h30m",
            "hosts": ["10.0.0.0/8", "::1"],
            "rate": "local:100/h,max_burst=5",
            "limit": "local:7",
            "inners": [{"name": "a", "weight": 2}],
            "by_name": {"b": {"name": "b"}},
        }
    )
    plain = sample.to_dict()
    assert plain["timeout"] == 5400.0
    assert plain["hosts"] == ["10.0.0.0/8", "::1"]
    assert plain["rate"] == "local:100/h,max_burst=5"
    assert plain["limit"] == "local:7"
    assert Sample.from_options({**plain, "limit": 3}).limit == LimitSpec(3)
    assert Sample.from_options(plain) == sample


def test_configs_are_frozen() -> None:
    sample = Sample.from_options({"name": "x"})
    with pytest.raises(AttributeError):
        sample.name = "y"  # type: ignore[misc]


def test_every_field_must_be_declared_with_option() -> None:
    with pytest.raises(TypeError, match="plain"):

        class Broken(Options, options_for="broken"):
            plain: int = 3
