"""``kumo.counter_series.define``: named rolling counters of this process, in time buckets.

A series is a ring of ``num_buckets`` unsigned 64-bit counters, each covering
``bucket_size`` whole seconds. Only the current bucket changes (``increment``, ``delta``,
``observe``); ``sum`` and ``sum_over`` total the ring or its newest buckets. The ring is
brought up to date on each call, as KumoMTA's is: the whole seconds elapsed since the
current bucket was last moved, divided by the bucket size, is how many buckets to step on
(zeroing each one stepped onto); the time of that step is then the new reference, so the
seconds left over are dropped, as KumoMTA drops them.

Series live in memory, in the process that defined them (one process per kumocore worker):
each worker counts what it sees. ``define`` with a known name and the same shape returns
that series (its counts kept, ``initial_value`` ignored); with another shape it replaces
it by a fresh one.

Bounds: ``num_buckets`` is at most 255 (KumoMTA's field is a ``u8``), a process holds at
most :data:`MAX_SERIES` series and a name is at most :data:`MAX_NAME_LENGTH` characters;
past them ``define`` fails naming the bound.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from kumocore import ConfigError, lua_type_name, policy_function
from kumocore_lua_policy.stdlib.arguments import number_arg
from kumocore_lua_policy.stdlib.time_delta import parse_duration

#: KumoMTA's ``num_buckets`` is a ``u8``.
MAX_BUCKETS = 255
#: Series a process may hold: a policy deriving names from traffic (a domain, a tenant)
#: would otherwise grow the worker without end.
MAX_SERIES = 10_000
MAX_NAME_LENGTH = 1024

U64_MAX = (1 << 64) - 1
I64_MAX = (1 << 63) - 1
I64_MIN = -(1 << 63)

_DEFINE = "kumo.counter_series.define"
_FIELDS = ("name", "num_buckets", "bucket_size", "initial_value")


def _integer(who: str, what: str, value: Any, low: int, high: int, kind: str) -> int:
    """``value`` as mlua reads an integer of Rust type ``kind``: a number (a float is cut
    toward zero) or a string holding one; out of ``low..high`` is an error."""
    number = number_arg(who, what, value)
    if isinstance(number, float) and not math.isfinite(number):
        raise ConfigError(f"{who}: {what} is out of range for {kind}: {number}")
    whole = int(number)
    if not low <= whole <= high:
        raise ConfigError(f"{who}: {what} is out of range for {kind}: {number}")
    return whole


def _whole_seconds(who: str, what: str, value: Any, round_up: bool) -> int:
    """A duration (seconds, or a string like ``'1m'``, ``'500ms'``) in whole seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(
            f"{who}: {what} must be a duration (a number of seconds or a "
            f"string like '30s'), got {lua_type_name(value)}"
        )
    try:
        delta = parse_duration(value)
    except (ValueError, OverflowError, ConfigError) as exc:  # inf, nan, 'soon'
        raise ConfigError(f"{who}: {what}: not a duration: {value!r} ({exc})") from None
    nanos = delta.nanoseconds
    if nanos is None:  # past 292 years
        raise ConfigError(f"{who}: {what} is too long: {value!r}")
    if nanos < 0:
        raise ConfigError(f"{who}: {what} must not be negative, got {value!r}")
    seconds, rest = divmod(nanos, 1_000_000_000)
    return seconds + 1 if round_up and rest else seconds


def _to_lua_number(value: int) -> int | float:
    # Lua integers are 64-bit signed: mlua hands a larger u64 over as a float.
    return value if value <= I64_MAX else float(value)


class CounterSeries:
    """One rolling series (the handle ``define`` returns): ``series:increment(n)``..."""

    lua_methods = True

    def __init__(
        self, num_buckets: int, bucket_size: int, initial_value: int, clock: Callable[[], float]
    ) -> None:
        self._buckets = [0] * num_buckets
        self._buckets[0] = initial_value
        self._bucket_size = bucket_size
        self._current = 0
        self._clock = clock
        self._moved = clock()

    def _rotate(self) -> int:
        """Step the ring on to the present; the index of the current bucket."""
        now = self._clock()
        steps = max(0, int(now - self._moved)) // self._bucket_size
        if steps:
            count = len(self._buckets)
            self._current = (self._current + steps) % count
            self._moved = now
            for back in range(min(steps, count)):
                self._buckets[(self._current - back) % count] = 0
        return self._current

    def increment(self, value: Any) -> None:
        """Add VALUE (an unsigned integer) to the current bucket; saturates at 2^64-1."""
        amount = _integer("counter_series:increment", "VALUE", value, 0, U64_MAX, "u64")
        index = self._rotate()
        self._buckets[index] = min(U64_MAX, self._buckets[index] + amount)

    def delta(self, value: Any) -> None:
        """Add the signed VALUE to the current bucket; the result stays within 0..2^64-1."""
        amount = _integer("counter_series:delta", "VALUE", value, I64_MIN, I64_MAX, "i64")
        index = self._rotate()
        self._buckets[index] = min(U64_MAX, max(0, self._buckets[index] + amount))

    def observe(self, value: Any) -> None:
        """Set the current bucket to VALUE (an unsigned integer)."""
        reading = _integer("counter_series:observe", "VALUE", value, 0, U64_MAX, "u64")
        self._buckets[self._rotate()] = reading

    def sum(self) -> int | float:
        """The total of every bucket (``num_buckets * bucket_size`` seconds)."""
        self._rotate()
        return _to_lua_number(min(U64_MAX, sum(self._buckets)))

    def sum_over(self, duration: Any) -> int | float:
        """The total of the newest buckets covering DURATION: at least the current one,
        at most all of them."""
        seconds = _whole_seconds("counter_series:sum_over", "DURATION", duration, False)
        index = self._rotate()
        count = len(self._buckets)
        wanted = min(count, max(1, -(-seconds // self._bucket_size)))
        total = sum(self._buckets[(index - back) % count] for back in range(wanted))
        return _to_lua_number(min(U64_MAX, total))


class CounterSeriesRegistry:
    """The named series of one process. ``clock`` (monotonic seconds) is what the
    series read the time from; tests replace it to move time on."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        # name -> (num_buckets, bucket_size in seconds, series)
        self._series: dict[str, tuple[int, int, CounterSeries]] = {}

    def __len__(self) -> int:
        return len(self._series)

    def functions(self) -> dict[str, Callable[..., Any]]:
        @policy_function(table=True)
        def define(**params: Any) -> CounterSeries:
            """`kumo.counter_series.define { name, num_buckets, bucket_size,
            initial_value }`: the named rolling counter series of this process, created
            (its current bucket set to `initial_value`, default 0) or, when known with the
            same `num_buckets` and `bucket_size`, the existing one with its counts; a
            known name with another shape is replaced by a fresh series. `bucket_size` is a
            duration rounded up to whole seconds. The series offers `series:increment(n)`,
            `series:delta(n)`, `series:observe(n)`, `series:sum()` and
            `series:sum_over(duration)`. At most 255 buckets, 10000 series per process."""
            return self.define(params)

        return {"counter_series.define": define}

    def define(self, params: dict[str, Any]) -> CounterSeries:
        unknown = sorted(str(key) for key in params if key not in _FIELDS)
        if unknown:
            raise ConfigError(
                f"{_DEFINE}: unknown field {unknown[0]!r}, expected one of {', '.join(_FIELDS)}"
            )
        for field in ("name", "num_buckets", "bucket_size"):
            if params.get(field) is None:
                raise ConfigError(f"{_DEFINE}: missing field {field!r}")
        name = params["name"]
        if not isinstance(name, str):
            raise ConfigError(f"{_DEFINE}: name must be a string, got {lua_type_name(name)}")
        num_buckets = _integer(
            _DEFINE,
            "num_buckets",
            params["num_buckets"],
            0,
            MAX_BUCKETS,
            f"u8 (at most {MAX_BUCKETS} buckets)",
        )
        if num_buckets == 0:
            raise ConfigError(f"{_DEFINE}: num_buckets must be >= 1")
        bucket_size = _whole_seconds(_DEFINE, "bucket_size", params["bucket_size"], True)
        if bucket_size == 0:
            raise ConfigError(f"{_DEFINE}: bucket_size must be >= 1 second")
        initial = params.get("initial_value")
        initial_value = (
            0 if initial is None else _integer(_DEFINE, "initial_value", initial, 0, U64_MAX, "u64")
        )

        known = self._series.get(name)
        if known is not None and known[:2] == (num_buckets, bucket_size):
            return known[2]
        if known is None:
            self._admit(name)
        series = CounterSeries(num_buckets, bucket_size, initial_value, self.clock)
        self._series[name] = (num_buckets, bucket_size, series)
        return series

    def _admit(self, name: str) -> None:
        """Refuse a new series past the bounds."""
        if len(name) > MAX_NAME_LENGTH:
            raise ConfigError(
                f"{_DEFINE}: name is {len(name)} characters long, more than "
                f"the {MAX_NAME_LENGTH} allowed"
            )
        if len(self._series) >= MAX_SERIES:
            raise ConfigError(
                f"{_DEFINE}: cannot define {name[:80]!r}: this process already holds "
                f"{MAX_SERIES} counter series, the most kumocore allows (series are "
                "never removed; reuse names rather than deriving them from traffic)"
            )
