"""Durations and byte sizes as KumoMTA policies write them.

KumoMTA accepts a number of seconds or a human string for every duration option
(``retry_interval = '20 minutes'``, ``idle_timeout = '5s'``, ``max_age = '7 days'``), and
humans also write sizes (``max_message_size = '20 MiB'``). Both are parsed here, once, so
every option reports a bad value the same way.
"""

from __future__ import annotations

import math
import re

from kumocore.errors import ConfigError
from kumocore.throttle.spec import U64_MAX

_SECOND = 1.0
_MINUTE = 60.0
_HOUR = 3600.0
_DAY = 86400.0
_WEEK = 7 * _DAY

# Singular and plural spellings are both accepted for durations (KumoMTA's humantime
# parser does so); months and years are left out on purpose: their length is ambiguous.
_DURATION_UNITS: dict[str, float] = {
    **dict.fromkeys(("ms", "msec", "msecs", "millisecond", "milliseconds"), 0.001),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), _SECOND),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), _MINUTE),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), _HOUR),
    **dict.fromkeys(("d", "day", "days"), _DAY),
    **dict.fromkeys(("w", "week", "weeks"), _WEEK),
}

# ``kB``/``MB`` are decimal and ``KiB``/``MiB`` binary, as their SI/IEC names say.
_SIZE_UNITS: dict[str, int] = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1024,
    "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
    "g": 1000**3, "gb": 1000**3, "gib": 1024**3,
    "t": 1000**4, "tb": 1000**4, "tib": 1024**4,
}  # fmt: skip

_NUMBER = r"\d+(?:\.\d+)?"
_SEGMENT = re.compile(rf"\s*({_NUMBER})\s*([a-zA-Z]+)\s*")
_BARE_NUMBER = re.compile(rf"\s*({_NUMBER})\s*")
_SIZE = re.compile(rf"\s*({_NUMBER})\s*([a-zA-Z]*)\s*")

#: The longest duration taken (about 317 years): longer ones overflowed to infinity
#: ('1' and 400 zeros is a float of inf), which JSON cannot carry and dates cannot reach.
MAX_DURATION = 1e10

DURATION_EXAMPLES = "a number of seconds or a string like '30s', '5 minutes', '1h30m', '7 days'"
SIZE_EXAMPLES = "a number of bytes or a string like '128 KiB', '20 MiB', '10MB'"


def duration_seconds(value: object) -> float:
    """``value`` in seconds; raises ``ValueError`` with the reason (no key: see callers)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected {DURATION_EXAMPLES}")
    if isinstance(value, int | float):
        return _bounded(_non_negative(float(value), DURATION_EXAMPLES))
    if match := _BARE_NUMBER.fullmatch(value):
        return _bounded(float(match.group(1)))
    total, pos = 0.0, 0
    while pos < len(value):
        match = _SEGMENT.match(value, pos)
        unit = _DURATION_UNITS.get(match.group(2).lower()) if match else None
        if match is None or unit is None:
            raise ValueError(f"expected {DURATION_EXAMPLES}")
        total += float(match.group(1)) * unit
        pos = match.end()
    if pos == 0:
        raise ValueError(f"expected {DURATION_EXAMPLES}")
    return _bounded(total)


def _bounded(seconds: float) -> float:
    if not seconds <= MAX_DURATION:  # also catches inf and nan
        raise ValueError(f"expected {DURATION_EXAMPLES}, of at most {MAX_DURATION:.0e} seconds")
    return seconds


def parse_duration(value: str | int | float, *, key: str) -> float:
    """Seconds from a number (already seconds) or a string like ``'5 minutes'``, ``'1h30m'``.

    Raises :class:`ConfigError` naming ``key`` and the value when it is not a duration.
    """
    try:
        return duration_seconds(value)
    except ValueError as exc:
        raise ConfigError(f"bad duration for {key!r}: {exc}, got {value!r}") from None


def format_duration(seconds: float) -> str:
    """A compact human form: ``1200 -> '20m'``, ``5400 -> '1h30m'``, ``0.5 -> '500ms'``.

    The result parses back to the same number of seconds (to the millisecond).
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"cannot format {seconds!r} as a duration")
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    parts = []
    for suffix, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{suffix}")
    if millis:
        parts.append(f"{millis}ms")
    return "".join(parts)


#: humantime's calendar units (KumoMTA's texts and ``TimeDelta.human``): a year of 365.25
#: days, a month of 30.44.
_HUMANTIME_CALENDAR = ((31_557_600, "year"), (2_630_016, "month"), (86_400, "day"))
_NANOS = 1_000_000_000


def humantime(nanos: int) -> str:
    """A non-negative interval as Rust's humantime ``format_duration`` writes it, the form
    KumoMTA prints durations in (its expiry texts, ``TimeDelta.human``): the non-zero parts
    largest first, separated by spaces, ``0s`` for none: ``1m 30s``, ``1day 2h``,
    ``2years 1month``, ``1s 500ms``."""
    secs, sub = divmod(nanos, _NANOS)
    if secs == 0 and sub == 0:
        return "0s"
    parts: list[str] = []
    for size, unit in _HUMANTIME_CALENDAR:
        count, secs = divmod(secs, size)
        if count:
            parts.append(f"{count}{unit}{'s' if count > 1 else ''}")
    hours, secs = divmod(secs, 3600)
    minutes, secs = divmod(secs, 60)
    millis, sub = divmod(sub, 1_000_000)
    micros, sub = divmod(sub, 1000)
    parts += [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s"),
                                         (millis, "ms"), (micros, "us"), (sub, "ns")) if n]
    return " ".join(parts)


def byte_size(value: object) -> int:
    """``value`` in bytes; raises ``ValueError`` with the reason (no key: see callers)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected {SIZE_EXAMPLES}")
    if isinstance(value, str):
        match = _SIZE.fullmatch(value)
        unit = _SIZE_UNITS.get(match.group(2).lower()) if match else None
        if match is None or unit is None:
            raise ValueError(f"expected {SIZE_EXAMPLES}")
        # Rounded: '1.1 KB' is 1100 bytes even though 1.1 * 1000 is not exact in binary.
        value = round(float(match.group(1)) * unit)
    if isinstance(value, float):
        size = _non_negative(value, SIZE_EXAMPLES)
        if not size.is_integer():
            raise ValueError("expected a whole number of bytes")
        value = int(size)
    if not 0 <= value <= U64_MAX:  # KumoMTA's size fields are usize
        raise ValueError(f"expected {SIZE_EXAMPLES} (from 0 to {U64_MAX} bytes)")
    return value


def parse_size(value: str | int, *, key: str) -> int:
    """Bytes from an integer or a string like ``'20 MiB'`` (binary) or ``'10MB'`` (decimal).

    Raises :class:`ConfigError` naming ``key`` and the value when it is not a size.
    """
    try:
        return byte_size(value)
    except ValueError as exc:
        raise ConfigError(f"bad size for {key!r}: {exc}, got {value!r}") from None


def _non_negative(number: float, expected: str) -> float:
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"expected {expected} (not negative)")
    return number
