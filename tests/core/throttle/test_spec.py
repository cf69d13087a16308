"""ThrottleSpec / LimitSpec parsing mirrors KumoMTA's crates/throttle tests."""

from __future__ import annotations

import pytest

from kumocore import ConfigError
from kumocore.throttle import LimitSpec, ThrottleSpec, connection_limit_key, rate_key


@pytest.mark.parametrize(
    ("text", "limit", "period", "max_burst", "force_local"),
    [
        ("100/hr", 100, 3600, None, False),
        ("100/h", 100, 3600, None, False),
        ("100/hour", 100, 3600, None, False),
        ("local:100/hr", 100, 3600, None, True),
        ("1_0,0/hour", 100, 3600, None, False),
        ("1,000/hr", 1000, 3600, None, False),
        ("10/s", 10, 1, None, False),
        ("10/sec", 10, 1, None, False),
        ("10/second", 10, 1, None, False),
        ("5/m", 5, 60, None, False),
        ("5/min", 5, 60, None, False),
        ("5/minute", 5, 60, None, False),
        ("50/d", 50, 86400, None, False),
        ("50/day", 50, 86400, None, False),
        ("10/5s", 10, 5, None, False),
        ("local:100/123m", 100, 123 * 60, None, True),
        ("50/day,max_burst=1", 50, 86400, 1, False),
        ("1,000/hr,max_burst=1_0", 1000, 3600, 10, False),
        ("local:7/2h,max_burst=0", 7, 7200, 0, True),
    ],
)
def test_parse_accepts_kumomta_syntax(
    text: str, limit: int, period: int, max_burst: int | None, force_local: bool
) -> None:
    assert ThrottleSpec.parse(text) == ThrottleSpec(limit, period, max_burst, force_local)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("100/hr", "100/h"),
        ("local:100/hr", "local:100/h"),
        ("local:100/123m", "local:100/7380s"),
        ("50/day,max_burst=1", "50/d,max_burst=1"),
        ("10/second", "10/s"),
        ("3/60s", "3/m"),
        ("10/5s", "10/5s"),
        ("1_000/2d", "1000/172800s"),
    ],
)
def test_display_is_kumomta_canonical_form_and_round_trips(text: str, shown: str) -> None:
    spec = ThrottleSpec.parse(text)
    assert str(spec) == shown
    assert ThrottleSpec.parse(str(spec)) == spec


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("100/hours", "unknown period quantity hours"),
        ("100/minutes", "unknown period quantity minutes"),
        ("100/seconds", "unknown period quantity seconds"),
        ("100/our", "unknown period quantity our"),
        ("100/5", "invalid period quantity 5"),
        ("0/h", "limit must be greater than 0"),
        ("0,0/h", "limit must be greater than 0"),
        ("three/hour", "invalid limit 'three'"),
        ("100", "expected 'limit/period'"),
        ("", "expected 'limit/period'"),
        ("100 /h", "invalid limit '100 '"),
        ("+100/h", "invalid limit '+100'"),
        ("100/ h", "unknown period quantity  h"),
        ("100/0s", "period must be greater than 0"),
        ("100/h,max_burst=lots", "invalid max_burst 'lots'"),
        ("LOCAL:100/h", "invalid limit 'LOCAL:100'"),
    ],
)
def test_parse_refuses_what_kumomta_refuses_naming_the_text(text: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ThrottleSpec.parse(text)
    assert reason in str(caught.value)
    assert repr(text) in str(caught.value)


def test_parse_refuses_non_strings_and_passes_specs_through() -> None:
    spec = ThrottleSpec.parse("1/s")
    assert ThrottleSpec.parse(spec) is spec
    with pytest.raises(ConfigError, match="100"):
        ThrottleSpec.parse(100)  # type: ignore[arg-type]


def test_constructing_an_impossible_spec_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="limit must be greater than 0"):
        ThrottleSpec(0, 60)


def test_interval_burst_and_capacity_follow_kumomta() -> None:
    burst = ThrottleSpec.parse("50/day,max_burst=1")
    assert burst.interval == 1728.0
    assert burst.burst == 1
    # redis-cell admits max_burst + 1 at once; KumoMTA's local store clamps to limit - 1.
    assert burst.capacity == 2
    default = ThrottleSpec.parse("10/s")
    assert (default.burst, default.capacity, default.interval) == (10, 10, 0.1)
    assert ThrottleSpec.parse("1/h").capacity == 1


def test_rate_key_encodes_limit_burst_and_period_like_kumomta() -> None:
    assert rate_key("kumomta.httpinject.ratelimit", ThrottleSpec.parse("50/d")) == (
        "kumomta.httpinject.ratelimit:50:50:86400"
    )
    assert rate_key("q", ThrottleSpec.parse("local:10/5s,max_burst=2")) == "q:10:2:5"
    assert connection_limit_key("src->site@smtp_client") == (
        "kumomta.connection_limit.src->site@smtp_client"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (100, LimitSpec(100)),
        ("100", LimitSpec(100)),
        ("1_00", LimitSpec(100)),
        ("1,000", LimitSpec(1000)),
        ("local:100", LimitSpec(100, force_local=True)),
        ("local:1_00", LimitSpec(100, force_local=True)),
    ],
)
def test_limit_spec_parses_numbers_and_strings(value: int | str, expected: LimitSpec) -> None:
    assert LimitSpec.parse(value) == expected


@pytest.mark.parametrize("value", ["three", "0", 0, -1, True, "", "local:", 1.5, "10/s"])
def test_limit_spec_refuses_bad_values_naming_them(value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        LimitSpec.parse(value)  # type: ignore[arg-type]
    assert repr(value) in str(caught.value)


def test_limit_spec_display() -> None:
    assert str(LimitSpec.parse("local:1_00")) == "local:100"
    assert str(LimitSpec.parse(32)) == "32"
