"""``Time:format(fmt)`` as KumoMTA does it: chrono's strftime, lenient, for a UTC time.

Python's ``strftime`` agrees with chrono on the common directives but not on the others:
chrono's ``%f`` is nanoseconds (9 digits, Python's is microseconds), ``%.f``/``%.3f``/
``%3f`` and friends are fractions of a second, ``%:z``/``%::z``/``%:::z`` are offsets with
colons, ``%+`` is RFC 3339 and ``%q`` the quarter; ``%s`` must not depend on the local
time zone. So the format is read here, item by item, as chrono's lenient ``StrftimeItems``
reads it: a specifier chrono does not know is written out as it was given (``%Q`` stays
``%Q``), and the padding modifiers ``%-x``, ``%_x`` and ``%0x`` apply to numeric
specifiers only. ``%#z`` is for parsing only in chrono; formatting with it is refused.

A Time holds microseconds, so the nanosecond digits past them are always zero.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from kumocore import ConfigError

__all__ = ["chrono_format", "rfc3339", "seconds_fraction"]

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _nanos(t: dt.datetime) -> int:
    return t.microsecond * 1000


def seconds_fraction(t: dt.datetime) -> str:
    """chrono's automatic fraction: nothing for whole seconds, else ``.`` and 3, 6 or 9
    digits, the fewest that hold the value."""
    nanos = _nanos(t)
    if nanos == 0:
        return ""
    if nanos % 1_000_000 == 0:
        return f".{nanos // 1_000_000:03d}"
    if nanos % 1000 == 0:
        return f".{nanos // 1000:06d}"
    return f".{nanos:09d}"


def rfc3339(t: dt.datetime) -> str:
    """chrono's ``to_rfc3339`` (and ``%+``) for a UTC time: ``+00:00``, automatic fraction."""
    return chrono_format(t, "%Y-%m-%dT%H:%M:%S%.f+00:00")


#: Numeric specifiers: (value, default width, default padding: "0" or " ").
_NUMERIC: dict[str, tuple[Callable[[dt.datetime], int], int, str]] = {
    "Y": (lambda t: t.year, 4, "0"),
    "C": (lambda t: t.year // 100, 2, "0"),
    "y": (lambda t: t.year % 100, 2, "0"),
    "q": (lambda t: (t.month - 1) // 3 + 1, 1, "0"),
    "m": (lambda t: t.month, 2, "0"),
    "d": (lambda t: t.day, 2, "0"),
    "e": (lambda t: t.day, 2, " "),
    "w": (lambda t: t.isoweekday() % 7, 1, "0"),
    "u": (lambda t: t.isoweekday(), 1, "0"),
    "U": (lambda t: (t.timetuple().tm_yday - t.isoweekday() % 7 + 6) // 7, 2, "0"),
    "W": (lambda t: (t.timetuple().tm_yday - t.weekday() + 6) // 7, 2, "0"),
    "G": (lambda t: t.isocalendar().year, 4, "0"),
    "g": (lambda t: t.isocalendar().year % 100, 2, "0"),
    "V": (lambda t: t.isocalendar().week, 2, "0"),
    "j": (lambda t: t.timetuple().tm_yday, 3, "0"),
    "H": (lambda t: t.hour, 2, "0"),
    "k": (lambda t: t.hour, 2, " "),
    "I": (lambda t: (t.hour + 11) % 12 + 1, 2, "0"),
    "l": (lambda t: (t.hour + 11) % 12 + 1, 2, " "),
    "M": (lambda t: t.minute, 2, "0"),
    "S": (lambda t: t.second, 2, "0"),
    "f": (_nanos, 9, "0"),
    "s": (lambda t: int(t.timestamp()), 1, "0"),
}

#: Specifiers that are one fixed rendering (no padding modifier allowed).
_FIXED: dict[str, Callable[[dt.datetime], str]] = {
    "A": lambda t: _DAYS[t.weekday()],
    "a": lambda t: _DAYS[t.weekday()][:3],
    "B": lambda t: _MONTHS[t.month - 1],
    "b": lambda t: _MONTHS[t.month - 1][:3],
    "h": lambda t: _MONTHS[t.month - 1][:3],
    "P": lambda t: "am" if t.hour < 12 else "pm",
    "p": lambda t: "AM" if t.hour < 12 else "PM",
    "Z": lambda t: "UTC",
    "z": lambda t: "+0000",
    "+": rfc3339,
    "n": lambda t: "\n",
    "t": lambda t: "\t",
    "%": lambda t: "%",
}

#: Specifiers that stand for several items (chrono's C-locale forms).
_COMPOSITE = {
    "D": "%m/%d/%y", "x": "%m/%d/%y", "F": "%Y-%m-%d", "v": "%e-%b-%Y",
    "R": "%H:%M", "T": "%H:%M:%S", "X": "%H:%M:%S", "r": "%I:%M:%S %p",
    "c": "%a %b %e %H:%M:%S %Y",
}

#: Specifiers spelled with more than one character after ``%`` (longest first).
_LONG: tuple[tuple[str, Callable[[dt.datetime], str]], ...] = (
    (":::z", lambda t: "+00"),
    ("::z", lambda t: "+00:00:00"),
    (":z", lambda t: "+00:00"),
    (".3f", lambda t: f".{_nanos(t) // 1_000_000:03d}"),
    (".6f", lambda t: f".{_nanos(t) // 1000:06d}"),
    (".9f", lambda t: f".{_nanos(t):09d}"),
    (".f", seconds_fraction),
    ("3f", lambda t: f"{_nanos(t) // 1_000_000:03d}"),
    ("6f", lambda t: f"{_nanos(t) // 1000:06d}"),
    ("9f", lambda t: f"{_nanos(t):09d}"),
)

_PADS = {"-": "", "0": "0", "_": " "}


def _numeric(t: dt.datetime, spec: str, pad: str | None) -> str:
    value, width, default = _NUMERIC[spec]
    number = value(t)
    fill = default if pad is None else pad
    return str(number) if not fill else str(number).rjust(width, fill)


def _specifier(t: dt.datetime, rest: str) -> tuple[str, int]:
    """The rendering of the specifier at the start of ``rest`` (after ``%``) and how many
    characters of ``rest`` it used; an unknown one renders as the text it consumed."""
    pad = _PADS.get(rest[:1])
    body = rest[1:] if pad is not None else rest
    used = len(rest) - len(body)
    if not body:
        return "%" + rest, len(rest)  # a lone '%' (or '%-') at the end: literal
    spec = body[0]
    if pad is not None:  # chrono allows a padding modifier on numeric specifiers only
        if spec in _NUMERIC:
            return _numeric(t, spec, pad), used + 1
        literal = "%" + rest[:used + 1]
        if spec in _COMPOSITE:
            # chrono's lenient reader writes the text, yet still emits the items queued
            # after the composite's first one: `%-D` gives `%-D/08/01`.
            return literal + chrono_format(t, _COMPOSITE[spec][2:]), used + 1
        return literal, used + 1
    if spec == "#":
        if body.startswith("#z"):
            raise ConfigError("Time:format: %#z is for parsing only (as in chrono)")
        return "%#", 1
    if spec in _NUMERIC:
        return _numeric(t, spec, None), 1
    if spec in _FIXED:
        return _FIXED[spec](t), 1
    if spec in _COMPOSITE:
        return chrono_format(t, _COMPOSITE[spec]), 1
    for long, render in _LONG:
        if body.startswith(long):
            return render(t), len(long)
    return "%" + spec, 1


def chrono_format(t: dt.datetime, fmt: str) -> str:
    """``fmt`` applied to the UTC time ``t`` as chrono's lenient strftime does."""
    out: list[str] = []
    i = 0
    while i < len(fmt):
        percent = fmt.find("%", i)
        if percent < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:percent])
        text, used = _specifier(t, fmt[percent + 1:])
        out.append(text)
        i = percent + 1 + used
    return "".join(out)
