from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kumocore import ConfigError
from kumocore.config import format_duration, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5 minutes", 300),
        ("5 mins", 300),
        ("5m", 300),
        ("20m", 1200),
        ("1h", 3600),
        ("1 hour", 3600),
        ("7 days", 604800),
        ("7d", 604800),
        ("30s", 30),
        ("2 seconds", 2),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("500ms", 0.5),
        ("1 week", 604800),
        ("90", 90),
        ("1.5h", 5400),
        ("10 MINUTES", 600),
    ],
)
def test_duration_strings_are_parsed_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text, key="k") == seconds


@pytest.mark.parametrize("number", [0, 60, 1.5])
def test_numbers_are_already_seconds(number: float) -> None:
    assert parse_duration(number, key="k") == number


@pytest.mark.parametrize(
    "bad", ["", "soon", "5 fortnights", "m5", "-5m", "5m garbage", "1 month", -1, True, None]
)
def test_bad_duration_names_the_key_and_the_value(bad: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration(bad, key="retry_interval")  # type: ignore[arg-type]
    assert "'retry_interval'" in str(info.value)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (30, "30s"), (1200, "20m"), (5400, "1h30m"), (604800, "7d"), (0.5, "500ms")],
)
def test_format_duration_is_compact(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=10**10))
def test_formatted_durations_parse_back(millis: int) -> None:
    assert parse_duration(format_duration(millis / 1000), key="k") == pytest.approx(millis / 1000)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (1024, 1024),
        ("20 MiB", 20 * 1024 * 1024),
        ("10MB", 10_000_000),
        ("128 KiB", 131072),
        ("2mb", 2_000_000),
        ("1.1 KB", 1100),
        ("512", 512),
    ],
)
def test_sizes_accept_bytes_and_units(value: str | int, size: int) -> None:
    assert parse_size(value, key="k") == size


@pytest.mark.parametrize("bad", ["lots", "10 parsecs", -1, 1.5, True])
def test_bad_size_names_the_key(bad: object) -> None:
    with pytest.raises(ConfigError, match="'max_message_size'"):
        parse_size(bad, key="max_message_size")  # type: ignore[arg-type]
