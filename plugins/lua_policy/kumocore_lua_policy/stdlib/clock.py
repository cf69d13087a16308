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
import time
import uuid
from collections.abc import Callable
from typing import Any

from kumocore import ConfigError
from kumocore.config.duration import duration_seconds, format_duration

UTC = dt.UTC


class TimeDelta:
    """A signed interval (``kumo.time.parse_duration``)."""

    lua_methods = True

    def __init__(self, seconds: float) -> None:
        self._seconds = float(seconds)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TimeDelta) and other._seconds == self._seconds

    def __hash__(self) -> int:
        return hash(self._seconds)

    def __add__(self, other: object) -> TimeDelta:
        if not isinstance(other, TimeDelta):
            return NotImplemented
        return TimeDelta(self._seconds + other._seconds)

    def __sub__(self, other: object) -> TimeDelta:
        if not isinstance(other, TimeDelta):
            return NotImplemented
        return TimeDelta(self._seconds - other._seconds)

    def __str__(self) -> str:
        return self.human

    @property
    def seconds(self) -> float:
        return self._seconds

    @property
    def milliseconds(self) -> int:
        return int(self._seconds * 1000)

    @property
    def microseconds(self) -> int:
        return int(self._seconds * 1_000_000)

    @property
    def nanoseconds(self) -> int:
        return int(self._seconds * 1_000_000_000)

    @property
    def human(self) -> str:
        sign = "-" if self._seconds < 0 else ""
        return sign + format_duration(abs(self._seconds))


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
        return self._dt.strftime("%Y-%m-%d %H:%M:%S UTC")

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
        return self._dt.isoformat()

    @property
    def elapsed(self) -> TimeDelta:
        return TimeDelta((dt.datetime.now(UTC) - self._dt).total_seconds())

    def format(self, fmt: str) -> str:
        """strftime formatting (Python's directives, which match chrono's common ones)."""
        return self._dt.strftime(fmt)


def now() -> Time:
    return Time(dt.datetime.now(UTC))


def from_unix_timestamp(seconds: float) -> Time:
    return Time(dt.datetime.fromtimestamp(seconds, UTC))


def with_ymd_hms(year: int, month: int, day: int, hour: int, minute: int, second: int) -> Time:
    try:
        return Time(dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"kumo.time.with_ymd_hms: {exc}") from None


def parse_rfc3339(text: str) -> Time:
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"kumo.time.parse_rfc3339: not an RFC 3339 time: {text!r}") from None
    if when.tzinfo is None:
        raise ConfigError(f"kumo.time.parse_rfc3339: {text!r} has no time zone offset")
    return Time(when)


def parse_rfc2822(text: str) -> Time:
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        raise ConfigError(f"kumo.time.parse_rfc2822: not an RFC 2822 date: {text!r}") from None
    return Time(when if when.tzinfo else when.replace(tzinfo=UTC))


def parse_duration(value: Any) -> TimeDelta:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return TimeDelta(value)  # KumoMTA accepts signed numbers here
    return TimeDelta(duration_seconds(value))


async def sleep(seconds: float) -> None:
    await asyncio.sleep(float(seconds))


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
