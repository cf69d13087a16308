"""Throttle and connection-limit specifications, parsed exactly as KumoMTA parses them.

A :class:`ThrottleSpec` is a rate (``"100/h"``, ``"local:10/5s,max_burst=2"``) used for
``max_message_rate``, ``max_connection_rate``, ``kumo.make_throttle`` and friends. A
:class:`LimitSpec` is a concurrency cap (``connection_limit = "local:32"``).

KumoMTA's grammar (crates/throttle/src/lib.rs) is deliberately strict: no spaces, no
plural units, an optional integer multiplier before the unit. Policies written for KumoMTA
must parse the same here, and a policy that KumoMTA refuses must be refused here too, so
the rules below mirror it rather than being "helpfully" lenient.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kumocore.errors import ConfigError

_LOCAL_PREFIX = "local:"
_BURST_MARKER = ",max_burst="
_UNITS = {
    "s": 1, "sec": 1, "second": 1,
    "m": 60, "min": 60, "minute": 60,
    "h": 3600, "hr": 3600, "hour": 3600,
    "d": 86400, "day": 86400,
}  # fmt: skip
# How KumoMTA displays a period: a bare unit when it is exactly one unit, else seconds.
_DISPLAY_UNITS = {86400: "d", 3600: "h", 60: "m", 1: "s"}
_DIGITS = re.compile(r"[0-9]+")
_NS = 1_000_000_000
#: KumoMTA holds limits, periods and bursts in ``u64``s: a larger number is refused.
U64_MAX = 2**64 - 1


def _invalid(limit: int, period: int, max_burst: int | None) -> str | None:
    """Why these fields cannot form a throttle, or None when they can."""
    if limit < 1:
        return "limit must be greater than 0!"
    if period < 1:
        # KumoMTA accepts "10/0s" and then divides by zero; refuse it up front instead.
        return "period must be greater than 0"
    if max_burst is not None and max_burst < 0:
        return "max_burst must not be negative"
    if max(limit, period, max_burst or 0) > U64_MAX:
        # u64 fields in KumoMTA; its multiplication of the period would overflow.
        return f"number too big (at most {U64_MAX})"
    return None


def _separated_number(text: str, what: str) -> int:
    """Parse ``"1_000"`` / ``"1,000"``: KumoMTA allows both separators for readability."""
    digits = text.replace("_", "").replace(",", "")
    # int() alone would accept "+5", " 5" and non-ASCII digits, which KumoMTA refuses.
    if not _DIGITS.fullmatch(digits):
        raise ValueError(f"invalid {what} {text!r}: not a whole number")
    significant = digits.lstrip("0")  # checked by length first: int() of 5000 digits fails
    if len(significant) > 20 or int(digits) > U64_MAX:  # a u64 in KumoMTA (parse::<u64>)
        raise ValueError(f"invalid {what} {text!r:.40}: number too large to fit in target type")
    return int(digits)


@dataclass(frozen=True, slots=True)
class ThrottleSpec:
    """``[local:]<limit>/[<N>]<unit>[,max_burst=<B>]``: at most ``limit`` per ``period``.

    ``period`` is in seconds. ``max_burst`` (None = ``limit``) caps how much of the budget
    may be used at once; ``force_local`` (the ``local:`` prefix) keeps the throttle in this
    process even when a shared store (Redis) is configured.
    """

    limit: int
    period: int
    max_burst: int | None = None
    force_local: bool = False
    # Derived once here because stores read them on every call (see LocalThrottleStore).
    key_suffix: str = field(init=False, repr=False, compare=False)
    interval_ns: int = field(init=False, repr=False, compare=False)
    capacity: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        reason = _invalid(self.limit, self.period, self.max_burst)
        if reason:
            raise ConfigError(f"invalid throttle spec {self}: {reason}")
        setattr_ = object.__setattr__
        setattr_(self, "key_suffix", f":{self.limit}:{self.burst}:{self.period}")
        # At least 1 ns so a huge limit never yields a zero interval (and a division by 0).
        setattr_(self, "interval_ns", max(1, self.period * _NS // self.limit))
        # KumoMTA's in-memory GCRA clamps max_burst to limit-1 and, like redis-cell, admits
        # max_burst + 1 at once: the default therefore allows exactly `limit` in an instant.
        setattr_(self, "capacity", min(self.burst, self.limit - 1) + 1)

    @classmethod
    def parse(cls, text: str | ThrottleSpec) -> ThrottleSpec:
        """Parse KumoMTA's syntax; raise :class:`kumocore.ConfigError` naming ``text``."""
        if isinstance(text, ThrottleSpec):
            return text
        if not isinstance(text, str):
            raise ConfigError(f"invalid throttle spec {text!r}: expected a string like '100/h'")
        try:
            return cls._parse(text)
        except ValueError as err:
            raise ConfigError(f"invalid throttle spec {text!r:.80}: {err}") from None

    @classmethod
    def _parse(cls, text: str) -> ThrottleSpec:
        force_local = text.startswith(_LOCAL_PREFIX)
        rest = text[len(_LOCAL_PREFIX) :] if force_local else text
        max_burst = None
        # Split the burst off first: "1,000/h" uses "," as a digit separator too.
        rest, marker, burst_text = rest.partition(_BURST_MARKER)
        if marker:
            max_burst = _separated_number(burst_text, "max_burst")
        limit_text, slash, period_text = rest.partition("/")
        if not slash:
            raise ValueError(f"expected 'limit/period', got {rest!r}")
        # An optional integer multiplier precedes the unit: "10/5s", "100/123m".
        unit = period_text.lstrip("0123456789")
        multiplier_text = period_text[: len(period_text) - len(unit)]
        if not unit:
            raise ValueError(f"invalid period quantity {period_text}")
        if unit not in _UNITS:
            raise ValueError(f"unknown period quantity {unit}")
        if len(multiplier_text.lstrip("0")) > 20 or int(multiplier_text or 1) > U64_MAX:
            raise ValueError("number too big")  # KumoMTA's u64 multiplier overflows
        period = _UNITS[unit] * (int(multiplier_text) if multiplier_text else 1)
        limit = _separated_number(limit_text, "limit")
        reason = _invalid(limit, period, max_burst)
        if reason:
            raise ValueError(reason)
        return cls(limit, period, max_burst, force_local)

    @property
    def burst(self) -> int:
        """The effective max_burst: ``limit`` unless set (KumoMTA's ``burst()``)."""
        return self.limit if self.max_burst is None else self.max_burst

    @property
    def interval(self) -> float:
        """Seconds per unit of the budget (``period / limit``): 50/day → 1728.0."""
        return self.period / self.limit

    def __str__(self) -> str:
        unit = _DISPLAY_UNITS.get(self.period) or f"{self.period}s"
        burst = "" if self.max_burst is None else f",max_burst={self.max_burst}"
        prefix = _LOCAL_PREFIX if self.force_local else ""
        return f"{prefix}{self.limit}/{unit}{burst}"


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """A concurrency limit: ``100``, ``"1_00"`` or ``"local:100"`` (kept in this process)."""

    limit: int
    force_local: bool = False

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ConfigError(f"invalid limit {self.limit!r}: limit must be 1 or larger")
        if self.limit > U64_MAX:
            raise ConfigError(
                f"invalid limit {self.limit!r}: number too large to fit in "
                f"target type (at most {U64_MAX})"
            )

    @classmethod
    def parse(cls, value: int | str | LimitSpec) -> LimitSpec:
        """Parse an integer or KumoMTA's string form; raise ConfigError naming ``value``."""
        if isinstance(value, LimitSpec):
            return value
        # bool is an int subclass; `connection_limit = true` is a mistake, not 1.
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(value)
        if isinstance(value, float):  # 1.5, 2^70: a Lua float is no u64 (nor is 3.0)
            raise ConfigError(
                f"invalid limit {value!r}: expected a whole number from 1 "
                f"to {U64_MAX} or a string like 'local:100', not a float"
            )
        if not isinstance(value, str):
            raise ConfigError(f"invalid limit {value!r}: expected a number or a string")
        force_local = value.startswith(_LOCAL_PREFIX)
        text = value[len(_LOCAL_PREFIX) :] if force_local else value
        try:
            limit = _separated_number(text, "limit")
        except ValueError as err:
            raise ConfigError(f"invalid limit spec {value!r:.80}: {err}") from None
        if limit == 0:
            raise ConfigError(f"invalid limit spec {value!r}: limit must be greater than 0!")
        return cls(limit, force_local)

    def __str__(self) -> str:
        return f"{_LOCAL_PREFIX}{self.limit}" if self.force_local else str(self.limit)
