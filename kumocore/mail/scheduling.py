"""Per-message delivery scheduling: ``msg:set_scheduling{...}`` and friends.

KumoMTA's fields: ``first_attempt`` (RFC 3339: not before then), ``expires`` (RFC 3339:
expire instead of retrying past it), and a delivery window given by all four of ``dow``
(``'Mon,Wed'`` or full names), ``tz`` (an IANA zone), ``start`` and ``end``
(``'HH:MM:SS'``). A due time outside the window moves to the next time inside it.

The schedule travels with the message in its meta under :data:`META_KEY` (so it is spooled
and survives a restart); the queue applies it when it computes the next attempt.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: Where a message's schedule is kept in its meta (not a KumoMTA name: kumocore's own).
META_KEY = "kumocore_scheduling"
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WINDOW = ("dow", "tz", "start", "end")
_FIELDS = ("first_attempt", "expires", *_WINDOW)


class ScheduleError(ValueError):
    """A scheduling table KumoMTA would refuse."""


def _timestamp(value: Any, field: str) -> float:
    if not isinstance(value, str):
        raise ScheduleError(f"scheduling: {field} must be an RFC 3339 date/time string")
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ScheduleError(f"scheduling: {field}: {value!r} is not an RFC 3339 date/time") from exc
    if when.tzinfo is None:
        raise ScheduleError(f"scheduling: {field}: {value!r} has no UTC offset")
    return when.timestamp()


def _time(value: Any, field: str) -> dt.time:
    try:
        return dt.time.fromisoformat(str(value))
    except ValueError as exc:
        raise ScheduleError(f"scheduling: {field} must be 'HH:MM:SS', got {value!r}") from exc


def _days(value: Any) -> frozenset[int]:
    if not isinstance(value, str) or not value.strip():
        raise ScheduleError("scheduling: dow must be a string like 'Mon,Wed'")
    days = set()
    for name in (part.strip().lower() for part in value.split(",")):
        if name in _DAYS:
            days.add(_DAYS.index(name))
        elif name in _FULL_DAYS:
            days.add(_FULL_DAYS.index(name))
        else:
            raise ScheduleError(f"scheduling: dow: unknown day {name!r}")
    return frozenset(days)


@dataclass(frozen=True)
class Schedule:
    """A parsed scheduling table; :meth:`to_table` gives back KumoMTA's shape."""

    table: dict[str, str]
    first_attempt: float | None = None
    expires: float | None = None
    days: frozenset[int] = frozenset()
    zone: dt.tzinfo | None = None
    start: dt.time | None = None
    end: dt.time | None = None

    @classmethod
    def parse(cls, table: Mapping[str, Any]) -> Schedule:
        unknown = sorted(str(key) for key in table if key not in _FIELDS)
        if unknown:
            raise ScheduleError(
                f"scheduling: unknown field {unknown[0]!r}; expected {', '.join(_FIELDS)}")
        given = [key for key in _WINDOW if table.get(key) is not None]
        if given and len(given) != len(_WINDOW):
            raise ScheduleError("scheduling: dow, tz, start and end must be given together")
        kwargs: dict[str, Any] = {}
        if table.get("first_attempt") is not None:
            kwargs["first_attempt"] = _timestamp(table["first_attempt"], "first_attempt")
        if table.get("expires") is not None:
            kwargs["expires"] = _timestamp(table["expires"], "expires")
        if given:
            try:
                kwargs["zone"] = ZoneInfo(str(table["tz"]))
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ScheduleError(f"scheduling: tz: unknown time zone {table['tz']!r}") from exc
            kwargs.update(days=_days(table["dow"]), start=_time(table["start"], "start"),
                          end=_time(table["end"], "end"))
        clean = {key: str(table[key]) for key in _FIELDS if table.get(key) is not None}
        return cls(table=clean, **kwargs)

    def to_table(self) -> dict[str, str]:
        return dict(self.table)

    def adjust(self, due: float) -> float:
        """The first time at or after ``due`` that the window (if any) allows."""
        if self.first_attempt is not None:
            due = max(due, self.first_attempt)
        if self.zone is None or self.start is None or self.end is None:
            return due
        local = dt.datetime.fromtimestamp(due, self.zone)
        for offset in range(8):
            day = (local + dt.timedelta(days=offset)).date()
            if day.weekday() not in self.days:
                continue
            opens = dt.datetime.combine(day, self.start, self.zone)
            closes = dt.datetime.combine(day, self.end, self.zone)
            if offset == 0 and opens <= local < closes:
                return due
            if opens > local:
                return opens.timestamp()
        return due  # no day allowed at all cannot happen (dow is never empty)


def message_schedule(meta: Mapping[str, Any]) -> Schedule | None:
    """The schedule stored in a message's meta, if any."""
    table = meta.get(META_KEY)
    return Schedule.parse(table) if isinstance(table, Mapping) else None
