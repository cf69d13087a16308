"""Operator suspensions of ready queues (KumoMTA's ``/api/admin/suspend-ready-q/v1``).

A ready-queue suspension names one egress path by its ready queue name
(``source->site@protocol``) and holds it until it expires or is cancelled: no new
connection opens, and an open one stops after its current message. Messages stay in the
ready queue meanwhile; nothing is bounced or rescheduled.

The hold itself is the one traffic shaping automation's ``Suspend`` action uses
(:meth:`kumocore.queue.path.EgressPath.suspend_until`): a path is held until the later of
its automation hold and its operator suspension (:meth:`EgressShared.held_until
<kumocore.queue.egress.EgressShared.held_until>`), and a path opened while either holds
starts held.

As in KumoMTA there is at most one suspension per ready queue name: suspending a queue
again replaces the earlier suspension (new id, reason and end), and the replaced one is
gone for good (its id cannot be cancelled any more).

"Again" must mean the same thing on every worker of a node (``serve --workers N``) and
every node sharing an automation store: each applies the suspension it was asked for and
the ones its peers pass on, in whatever order they arrive. Two suspensions of one queue
made at the same moment through two workers used to leave each worker holding the one it
happened to apply last: different ids, and cancelling the listed one left the queue held
on the other worker. So ids are time-ordered (RFC 9562 UUIDv7, still KumoMTA's UUID shape,
strictly increasing within a process), and of two suspensions of one queue the one with
the greater id is the later one, wherever and in whatever order they are applied: every
worker and node ends up holding the same one.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kumocore.errors import ConfigError

__all__ = [
    "ReadyQueueSuspension",
    "ReadySuspensions",
    "new_suspension_id",
    "parse_ready_suspension",
    "suspension_order",
]

#: KumoMTA's default when neither ``duration`` nor ``expires`` is given.
DEFAULT_DURATION = 300.0
_ALLOWED = ("name", "reason", "duration", "expires")


_last_id = 0
_id_lock = threading.Lock()  # the policy's functions may make ids off the event loop


def new_suspension_id() -> str:
    """A UUIDv7: 48 bits of unix milliseconds, then random bits; each one greater than
    the one before it in this process (two made in the same millisecond are ordered)."""
    global _last_id
    millis = time.time_ns() // 1_000_000
    rand_a, rand_b = int.from_bytes(os.urandom(2)) & 0xFFF, int.from_bytes(os.urandom(8))
    value = (millis << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | (rand_b >> 2)
    with _id_lock:
        # Same millisecond (or a clock stepped back): one more than the last id, which
        # keeps the version and variant bits (the low 62 bits will not overflow).
        value = max(value, _last_id + 1)
        _last_id = value
    return str(uuid.UUID(int=value))


def suspension_order(suspension_id: str) -> tuple[int, int, str]:
    """Sorts suspensions of one queue by when they were made: time-ordered ids by their
    value; any other id (another version, or not a UUID) before them all, by its text,
    so that every worker still picks the same one."""
    try:
        parsed = uuid.UUID(suspension_id)
    except ValueError:
        return (0, 0, suspension_id)
    return (1, parsed.int, "") if parsed.version == 7 else (0, parsed.int, suspension_id)


@dataclass
class ReadyQueueSuspension:
    """One suspension: which ready queue, why, and until when (unix seconds)."""

    name: str
    reason: str
    expires: float
    id: str = field(default_factory=new_suspension_id)

    @property
    def active(self) -> bool:
        return time.time() < self.expires

    def to_json(self) -> dict[str, Any]:
        """KumoMTA's ``SuspendReadyQueueV1ListEntry``."""
        from kumocore.logs.record import rfc3339_ns

        remaining = max(self.expires - time.time(), 0.0)
        return {
            "id": self.id,
            "name": self.name,
            "reason": self.reason,
            "duration": f"{remaining:.0f}s",
            "expires": rfc3339_ns(self.expires),
        }


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"field {key!r} is required and must be a non-empty string")
    return value


def _expires(body: dict[str, Any]) -> float:
    """The end time from ``expires`` (RFC 3339, wins when given) or ``duration``."""
    from kumocore.config import parse_duration

    # Validate duration even when expires overrides it: a typo is reported, not ignored.
    duration = body.get("duration")
    if duration is not None and not isinstance(duration, str):
        raise ConfigError("field 'duration' must be a string such as '90s' or '1h30m'")
    seconds = DEFAULT_DURATION if duration is None else parse_duration(duration, key="duration")
    expires = body.get("expires")
    if expires is None:
        return time.time() + seconds
    if not isinstance(expires, str):
        raise ConfigError("field 'expires' must be an RFC 3339 date-time string")
    try:
        when = datetime.fromisoformat(expires)
    except ValueError as exc:
        raise ConfigError(f"field 'expires' must be RFC 3339: {exc}") from exc
    if when.tzinfo is None:
        raise ConfigError("field 'expires' must carry a time zone ('Z' or '+01:00')")
    try:  # listed in UTC, so it must be a time UTC can write (9999-12-31T23:59:59-05:00 is not)
        when.astimezone(UTC)
    except OverflowError:
        raise ConfigError(f"field 'expires' is out of range in UTC: {expires!r}") from None
    return when.timestamp()


def parse_ready_suspension(body: dict[str, Any]) -> ReadyQueueSuspension:
    """Validate a KumoMTA ``SuspendReadyQueueV1Request`` body."""
    unknown = sorted(set(body) - set(_ALLOWED))
    if unknown:
        raise ConfigError(f"unknown field {unknown[0]!r}; allowed: {', '.join(_ALLOWED)}")
    return ReadyQueueSuspension(
        name=_text(body, "name"), reason=_text(body, "reason"), expires=_expires(body))


class ReadySuspensions:
    """The ready-queue suspensions of one worker, by ready queue name and by id (automation
    asks, at each sync, whether each shared suspension is held here), and the ids of the
    ones a later suspension of their queue replaced (with their ends, to forget them then)."""

    def __init__(self) -> None:
        self._by_name: dict[str, ReadyQueueSuspension] = {}
        self._by_id: dict[str, ReadyQueueSuspension] = {}
        self._replaced: dict[str, float] = {}

    def _remove(self, suspension: ReadyQueueSuspension) -> None:
        del self._by_name[suspension.name]
        self._by_id.pop(suspension.id, None)

    def _prune(self) -> None:
        for suspension in [s for s in self._by_name.values() if not s.active]:
            self._remove(suspension)
        now = time.time()
        for gone in [i for i, expires in self._replaced.items() if expires <= now]:
            del self._replaced[gone]

    def add(self, suspension: ReadyQueueSuspension) -> bool:
        """Hold ``suspension.name`` unless a later suspension of that queue holds it (or
        did: a replaced suspension never comes back). True when ``suspension`` holds now;
        the one it replaced, if any, is gone."""
        self._prune()  # an operator's request: rare enough to tidy up on
        if suspension.id in self._replaced:
            return False
        current = self._by_name.get(suspension.name)
        if current is not None and current.id == suspension.id:
            return True
        if (
            current is not None
            and current.active
            and suspension_order(current.id) > suspension_order(suspension.id)
        ):
            self._replaced[suspension.id] = suspension.expires
            return False
        if current is not None:
            self._remove(current)
            self._replaced[current.id] = current.expires
        self._by_name[suspension.name] = suspension
        self._by_id[suspension.id] = suspension
        return True

    def cancel(self, suspension_id: str) -> ReadyQueueSuspension | None:
        """Remove the active suspension with this id; None if there is none."""
        suspension = self._by_id.get(suspension_id)
        if suspension is None:
            return None
        self._remove(suspension)
        # an expired suspension cannot be cancelled (404, as in KumoMTA)
        return suspension if suspension.active else None

    def list(self) -> list[ReadyQueueSuspension]:
        self._prune()
        return sorted(self._by_name.values(), key=lambda s: s.name)

    def get(self, name: str) -> ReadyQueueSuspension | None:
        suspension = self._by_name.get(name)
        return suspension if suspension is not None and suspension.active else None

    def held_until(self, name: str) -> float:
        """When the suspension of ready queue ``name`` ends (0: not suspended)."""
        suspension = self.get(name)
        return suspension.expires if suspension is not None else 0.0

    def replaced(self, suspension_id: str) -> bool:
        """Whether a later suspension of its queue replaced ``suspension_id`` here."""
        return suspension_id in self._replaced

    def __contains__(self, suspension_id: object) -> bool:
        return suspension_id in self._by_id or suspension_id in self._replaced
