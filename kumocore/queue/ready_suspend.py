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
again replaces the earlier suspension (new id, reason and end).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kumocore.errors import ConfigError

__all__ = ["ReadyQueueSuspension", "ReadySuspensions", "parse_ready_suspension"]

#: KumoMTA's default when neither ``duration`` nor ``expires`` is given.
DEFAULT_DURATION = 300.0
_ALLOWED = ("name", "reason", "duration", "expires")


@dataclass
class ReadyQueueSuspension:
    """One suspension: which ready queue, why, and until when (unix seconds)."""

    name: str
    reason: str
    expires: float
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

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
    asks, at each sync, whether each shared suspension is held here)."""

    def __init__(self) -> None:
        self._by_name: dict[str, ReadyQueueSuspension] = {}
        self._by_id: dict[str, ReadyQueueSuspension] = {}

    def _remove(self, suspension: ReadyQueueSuspension) -> None:
        del self._by_name[suspension.name]
        self._by_id.pop(suspension.id, None)

    def _prune(self) -> None:
        for suspension in [s for s in self._by_name.values() if not s.active]:
            self._remove(suspension)

    def add(self, suspension: ReadyQueueSuspension) -> None:
        """Hold ``suspension.name``; replaces an earlier suspension of that queue."""
        replaced = self._by_name.get(suspension.name)
        if replaced is not None:
            self._remove(replaced)
        self._by_name[suspension.name] = suspension
        self._by_id[suspension.id] = suspension

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

    def __contains__(self, suspension_id: object) -> bool:
        return suspension_id in self._by_id
