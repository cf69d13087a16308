"""``kumo.time.*`` (Time, TimeDelta, timers) and ``kumo.uuid.*`` (Uuid objects).

Times are UTC. Their fields (``t.year``, ``t.rfc3339``...), methods (``t:format(fmt)``) and
operators (``time + delta``, ``time - time``, ``==``; ``tostring``) are as KumoMTA
documents, in Lua and in Python.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import os
import re
import time
import uuid
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from kumocore import ConfigError
from kumocore.config.duration import duration_seconds, humantime
from kumocore_lua_policy.stdlib.arguments import number_arg, string_arg
from kumocore_lua_policy.stdlib.chrono_format import chrono_format, rfc3339

UTC = dt.UTC


#: humantime's units for ``TimeDelta.human``: a year is 365.25 days, a month 30.44 days.
_YEAR, _MONTH, _DAY = 31_557_600, 2_630_016, 86_400
_NANOS = 1_000_000_000
_I64 = range(-(1 << 63), 1 << 63)


def _trunc_div(value: int, unit: int) -> int:
    """``value / unit`` rounded toward zero (as chrono's ``num_milliseconds``)."""
    whole = abs(value) // unit
    return whole if value >= 0 else -whole


#: chrono's OutOfRangeError text, which KumoMTA shows for ``human``/``tostring`` of a
#: negative TimeDelta.
_NEGATIVE_DELTA = "Source duration value is out of range for the target type"


class NegativeDeltaError(ValueError):
    """``human`` or ``tostring`` of a negative TimeDelta (KumoMTA raises too)."""


class TimeDelta:
    """A signed interval (``kumo.time.parse_duration``), held in whole nanoseconds."""

    lua_methods = True

    def __init__(self, seconds: float) -> None:
        # Exactly, then to the nearest nanosecond (as Rust's Duration::from_secs_f64).
        self._nanos = round(Fraction(seconds) * _NANOS)

    @classmethod
    def from_nanos(cls, nanos: int) -> TimeDelta:
        delta = cls(0)
        delta._nanos = nanos
        return delta

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TimeDelta) and other._nanos == self._nanos

    def __hash__(self) -> int:
        return hash(self._nanos)

    def __add__(self, other: object) -> TimeDelta:
        if not isinstance(other, TimeDelta):
            return NotImplemented
        return TimeDelta.from_nanos(self._nanos + other._nanos)

    def __sub__(self, other: object) -> TimeDelta:
        if not isinstance(other, TimeDelta):
            return NotImplemented
        return TimeDelta.from_nanos(self._nanos - other._nanos)

    def __str__(self) -> str:
        return self.human

    @property
    def seconds(self) -> float:
        return self._nanos / _NANOS

    @property
    def milliseconds(self) -> int:
        return _trunc_div(self._nanos, 1_000_000)

    @property
    def microseconds(self) -> int | None:
        micros = _trunc_div(self._nanos, 1000)
        return micros if micros in _I64 else None  # KumoMTA: nil past i64

    @property
    def nanoseconds(self) -> int | None:
        return self._nanos if self._nanos in _I64 else None  # nil past i64 (292 years)

    @property
    def human(self) -> str:
        """humantime's form (``1m 30s``). A negative interval raises
        :class:`NegativeDeltaError`, as KumoMTA's does (it converts to an unsigned
        ``std::time::Duration`` before formatting); the numeric fields stay signed."""
        if self._nanos < 0:
            raise NegativeDeltaError(_NEGATIVE_DELTA)
        return humantime(self._nanos)


class Time:
    """A UTC date and time."""

    lua_methods = True

    def __init__(self, when: dt.datetime) -> None:
        self._dt = when.astimezone(UTC)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Time) and other._dt == self._dt

    def __hash__(self) -> int:
        return hash(self._dt)

    def __add__(self, delta: object) -> Time:
        if not isinstance(delta, TimeDelta):
            return NotImplemented
        return Time(self._dt + dt.timedelta(seconds=delta.seconds))

    def __sub__(self, other: object) -> Any:
        if isinstance(other, Time):
            return TimeDelta((self._dt - other._dt).total_seconds())
        if isinstance(other, TimeDelta):
            return Time(self._dt - dt.timedelta(seconds=other.seconds))
        return NotImplemented

    def __str__(self) -> str:
        # chrono's Display: the fraction of a second only when there is one.
        return chrono_format(self._dt, "%Y-%m-%d %H:%M:%S%.f UTC")

    year = property(lambda self: self._dt.year)
    month = property(lambda self: self._dt.month)
    day = property(lambda self: self._dt.day)
    hour = property(lambda self: self._dt.hour)
    minute = property(lambda self: self._dt.minute)
    second = property(lambda self: self._dt.second)

    @property
    def unix_timestamp(self) -> int:
        return int(self._dt.timestamp())

    @property
    def unix_timestamp_millis(self) -> int:
        return int(self._dt.timestamp() * 1000)

    @property
    def rfc2822(self) -> str:
        # KumoMTA (chrono) writes the day without a leading zero and "+0000".
        return self._dt.strftime(f"%a, {self._dt.day} %b %Y %H:%M:%S +0000")

    @property
    def rfc3339(self) -> str:
        return rfc3339(self._dt)  # chrono's: a fraction of 3, 6 or 9 digits, if any

    @property
    def elapsed(self) -> TimeDelta:
        return TimeDelta((dt.datetime.now(UTC) - self._dt).total_seconds())

    def format(self, fmt: str) -> str:
        """chrono's strftime, lenient, as KumoMTA's (:mod:`.chrono_format`)."""
        return chrono_format(self._dt, fmt)


def now() -> Time:
    return Time(dt.datetime.now(UTC))


def from_unix_timestamp(seconds: Any) -> Time:
    seconds = number_arg("kumo.time.from_unix_timestamp", "SECONDS", seconds)
    return Time(dt.datetime.fromtimestamp(seconds, UTC))


def with_ymd_hms(year: int, month: int, day: int, hour: int, minute: int, second: int) -> Time:
    try:
        return Time(dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"kumo.time.with_ymd_hms: {exc}") from None


def parse_rfc3339(text: Any) -> Time:
    text = string_arg("kumo.time.parse_rfc3339", "TEXT", text)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"kumo.time.parse_rfc3339: not an RFC 3339 time: {text!r}") from None
    if when.tzinfo is None:
        raise ConfigError(f"kumo.time.parse_rfc3339: {text!r} has no time zone offset")
    return Time(when)


def parse_rfc2822(text: Any) -> Time:
    text = string_arg("kumo.time.parse_rfc2822", "TEXT", text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        raise ConfigError(f"kumo.time.parse_rfc2822: not an RFC 2822 date: {text!r}") from None
    return Time(when if when.tzinfo else when.replace(tzinfo=UTC))


#: humantime's unit names (``parse_duration``), in nanoseconds.
_UNITS = {
    **dict.fromkeys(("nanos", "nsec", "ns"), 1),
    **dict.fromkeys(("usec", "us", "\u00b5s"), 1000),
    **dict.fromkeys(("millis", "msec", "ms"), 1_000_000),
    **dict.fromkeys(("seconds", "second", "secs", "sec", "s"), _NANOS),
    **dict.fromkeys(("minutes", "minute", "min", "mins", "m"), 60 * _NANOS),
    **dict.fromkeys(("hours", "hour", "hr", "hrs", "h"), 3600 * _NANOS),
    **dict.fromkeys(("days", "day", "d"), _DAY * _NANOS),
    **dict.fromkeys(("weeks", "week", "wk", "wks", "w"), 7 * _DAY * _NANOS),
    **dict.fromkeys(("months", "month", "M"), _MONTH * _NANOS),
    **dict.fromkeys(("years", "year", "yr", "yrs", "y"), _YEAR * _NANOS),
}
_SPAN = re.compile(r"(\d[\d\s]*)([A-Za-z\u00b5]+)\s*")


def _humantime_nanos(text: str) -> int | None:
    """``text`` as humantime's ``parse_duration`` reads it (``1day 2h``, ``2months``,
    ``1s 500ms``, ``7ns``: every span a whole number and a unit), or None."""
    if text.strip() and set(text) <= {"0"}:
        return 0
    text = text.lstrip()
    total, pos = 0, 0
    while pos < len(text):
        match = _SPAN.match(text, pos)
        unit = _UNITS.get(match.group(2)) if match else None
        if match is None or unit is None:
            return None
        total += int("".join(match.group(1).split())) * unit
        pos = match.end()
    return total if pos else None


def parse_duration(value: Any) -> TimeDelta:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return TimeDelta(value)  # KumoMTA accepts signed numbers here
    if isinstance(value, str) and (nanos := _humantime_nanos(value)) is not None:
        return TimeDelta.from_nanos(nanos)  # exactly, whatever TimeDelta.human wrote
    return TimeDelta(duration_seconds(value))


async def sleep(seconds: Any) -> None:
    await asyncio.sleep(float(number_arg("kumo.time.sleep", "SECONDS", seconds)))


class Timer:
    """``kumo.time.start_timer(label)``; ``timer:done()`` returns the seconds elapsed.

    kumocore records no ``user_lua_latency`` histogram yet: the value is only returned.
    """

    lua_methods = True

    def __init__(self, label: str) -> None:
        self.label = label
        self._start = time.monotonic()

    def done(self) -> float:
        return time.monotonic() - self._start


class Uuid:
    """A UUID with KumoMTA's fields: ``hyphenated``, ``simple``, ``braced``, ``urn``, ``bytes``."""

    def __init__(self, value: uuid.UUID) -> None:
        self._uuid = value

    def __str__(self) -> str:
        return str(self._uuid)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Uuid) and other._uuid == self._uuid

    def __hash__(self) -> int:
        return hash(self._uuid)

    hyphenated = property(lambda self: str(self._uuid))
    simple = property(lambda self: self._uuid.hex)
    braced = property(lambda self: "{" + str(self._uuid) + "}")
    urn = property(lambda self: self._uuid.urn)
    bytes = property(lambda self: self._uuid.bytes)


def uuid_parse(text: str) -> Uuid:
    try:
        return Uuid(uuid.UUID(str(text)))
    except ValueError:
        raise ConfigError(f"kumo.uuid.parse: not a UUID: {text!r}") from None


def _with_version(value: int, version: int) -> uuid.UUID:
    value &= ~(0xF000 << 64)
    value |= version << 76
    value &= ~(0xC000 << 48)
    value |= 0x8000 << 48
    return uuid.UUID(int=value)


def new_v6() -> Uuid:
    """RFC 9562 v6: v1's timestamp reordered most significant first."""
    v1 = uuid.uuid1()
    ts = v1.time
    high = ((ts >> 12) << 16) | (0x6000 | (ts & 0x0FFF))
    return Uuid(uuid.UUID(int=(high << 64) | (v1.int & ((1 << 64) - 1))))


def new_v7() -> Uuid:
    """RFC 9562 v7: Unix milliseconds then random bits."""
    millis = time.time_ns() // 1_000_000
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    return Uuid(_with_version(value, 7))


def clock_functions() -> dict[str, Callable[..., Any]]:
    return {
        "time.now": now,
        "time.from_unix_timestamp": from_unix_timestamp,
        "time.with_ymd_hms": with_ymd_hms,
        "time.parse_rfc3339": parse_rfc3339,
        "time.parse_rfc2822": parse_rfc2822,
        "time.parse_duration": parse_duration,
        "time.sleep": sleep,
        "time.start_timer": Timer,
        "uuid.parse": uuid_parse,
        "uuid.new_v1": lambda: Uuid(uuid.uuid1()),
        "uuid.new_v4": lambda: Uuid(uuid.uuid4()),
        "uuid.new_v6": new_v6,
        "uuid.new_v7": new_v7,
    }
