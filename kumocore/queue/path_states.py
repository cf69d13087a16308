"""Why a ready queue is not opening connections right now (KumoMTA's ready queue states).

Two states, with KumoMTA's names, set by :class:`kumocore.queue.slots.PathThrottles`:

* ``connection_limited``: a connection slot was refused (the path's
  ``connection_limit`` or one of its ``additional_connection_limits`` is used up,
  possibly by other workers or nodes), or the throttle store failed;
* ``connection_rate_throttled``: ``max_connection_rate`` made a new connection wait.

Each state holds a short context text and the time it was entered, and is cleared as
soon as a slot (or the rate) is granted again, or once the ready queue has no message
left (:meth:`kumocore.queue.path.EgressPath.wake`): a queue with nothing to send is not
held back, and paths are never dropped, so a state left there would be listed for ever.
``GET /api/admin/ready-q-states/v1`` (:mod:`kumocore.admin.ready_q_states`) lists them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CONNECTION_LIMITED", "CONNECTION_RATE_THROTTLED", "PathStates", "QueueState"]

CONNECTION_LIMITED = "connection_limited"
CONNECTION_RATE_THROTTLED = "connection_rate_throttled"


@dataclass(frozen=True, slots=True)
class QueueState:
    """One state: what happened, and since when (unix seconds)."""

    context: str
    since: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        from kumocore.logs.record import rfc3339_ns

        return {"context": self.context, "since": rfc3339_ns(self.since)}


class PathStates:
    """The current states of one path, by name."""

    __slots__ = ("_states",)

    def __init__(self) -> None:
        self._states: dict[str, QueueState] = {}

    def enter(self, name: str, context: str) -> None:
        """Enter (or stay in) state ``name``; staying keeps when it was first entered, so
        ``since`` says how long the path has been held back."""
        current = self._states.get(name)
        self._states[name] = QueueState(context, current.since if current else time.time())

    def leave(self, name: str) -> None:
        self._states.pop(name, None)

    def clear(self) -> None:
        """Nothing is held back any more (the ready queue has nothing left to send)."""
        self._states.clear()

    def get(self, name: str) -> QueueState | None:
        return self._states.get(name)

    def to_json(self) -> dict[str, dict[str, Any]]:
        return {name: state.to_json() for name, state in sorted(self._states.items())}
