"""``kumo.time``'s TimeDelta (a signed interval) and ``kumo.time.parse_duration``.

A TimeDelta is held in whole nanoseconds; its fields (``seconds``, ``milliseconds``...)
and ``human``/``tostring`` (humantime's form, ``1m 30s``) are as KumoMTA documents, and
:func:`parse_duration` reads humantime's units back exactly. Times, which subtract to a
TimeDelta, are :mod:`kumocore_lua_policy.stdlib.clock`'s.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from kumocore.config.duration import duration_seconds, humantime

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
