"""``kumo.time.*``: Time (a UTC date and time), its constructors, ``sleep`` and timers.

Times are UTC. Their fields (``t.year``, ``t.rfc3339``...), methods (``t:format(fmt)``) and
operators (``time + delta``, ``time - time``, ``==``; ``tostring``) are as KumoMTA
documents, in Lua and in Python. The intervals they add and subtract are
:mod:`kumocore_lua_policy.stdlib.time_delta`'s; ``kumo.uuid.*`` is
:mod:`kumocore_lua_policy.stdlib.uuids`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import time
from collections.abc import Callable
from typing import Any

from kumocore import ConfigError, lua_type_name, observe_user_latency
from kumocore_lua_policy.stdlib.arguments import number_arg, string_arg
from kumocore_lua_policy.stdlib.chrono_format import chrono_format, rfc3339
from kumocore_lua_policy.stdlib.time_delta import TimeDelta, parse_duration

UTC = dt.UTC


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
    fields = (year, month, day, hour, minute, second)
    for name, value in zip(("YEAR", "MONTH", "DAY", "HOUR", "MINUTE", "SECOND"), fields,
                           strict=True):  # fmt: skip
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"kumo.time.with_ymd_hms: {name} must be an integer, "
                              f"got {lua_type_name(value)}")
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


async def sleep(seconds: Any) -> None:
    await asyncio.sleep(float(number_arg("kumo.time.sleep", "SECONDS", seconds)))


class Timer:
    """``kumo.time.start_timer(label)``; ``timer:done()`` returns the seconds elapsed and,
    the first time, records them in the ``user_lua_latency`` histogram under ``label``.
    ``local timer <close> = ...`` records when the variable goes out of scope (the bridge
    calls :meth:`close`), as in KumoMTA. A timer neither done nor closed records nothing
    (KumoMTA records one when its timer is garbage-collected; Python's collection time is
    not the operation's end).
    """

    lua_methods = True

    def __init__(self, label: Any) -> None:
        self.label = str(label)
        self._start = time.monotonic()
        self._recorded = False

    def done(self) -> float:
        elapsed = time.monotonic() - self._start
        if not self._recorded:
            self._recorded = True
            observe_user_latency(self.label, elapsed)
        return elapsed

    def close(self) -> None:
        self.done()


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
    }
