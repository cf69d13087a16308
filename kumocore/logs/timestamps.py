"""UTC times as text, for the JSON of views that KumoMTA fills from a ``DateTime<Utc>``
(trace events' ``when``, a queued message's ``created``/``due``, suspensions' ``expires``).

A leaf: it imports nothing of kumocore, so any module may format a time without pulling
in (or joining an import circle with) the module whose view it writes. Log records, which
carry nanoseconds, use :func:`kumocore.logs.record.rfc3339_ns`.
"""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(when: float) -> str:
    """The unix time ``when`` as RFC 3339 in UTC with a ``Z``, its fraction as chrono's
    serde writes a ``DateTime<Utc>`` (``SecondsFormat::AutoSi``): none for a whole second,
    3 digits for a whole millisecond, else 6 (a float holds no more than microseconds):
    ``2026-12-06T03:20:01Z``, ``...01.500Z``, ``...01.123456Z``."""
    moment = datetime.fromtimestamp(when, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + chrono_fraction(moment.microsecond * 1000) + "Z"


def chrono_fraction(nanos: int) -> str:
    """chrono's automatic fraction of a second (``SecondsFormat::AutoSi``, ``%.f``):
    nothing for ``0``, else ``.`` and the fewest of 3, 6 or 9 digits that hold ``nanos``."""
    if nanos == 0:
        return ""
    if nanos % 1_000_000 == 0:
        return f".{nanos // 1_000_000:03d}"
    if nanos % 1_000 == 0:
        return f".{nanos // 1_000:06d}"
    return f".{nanos:09d}"
