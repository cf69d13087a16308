"""What the queues need of traffic shaping automation (:mod:`kumocore.tsa`).

The automation engine sits above the queues (it applies its actions to them), so the
queues see it through this protocol instead of importing it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kumocore.logs.record import LogRecord


class Automation(Protocol):
    """The engine as the queues use it: it observes outcomes and holds suspended paths."""

    def observe(self, record: LogRecord) -> None:
        """A delivery outcome of this node (cheap when no rule could match)."""
        ...

    def held_until(self, path_name: str) -> float:
        """When the latest ``Suspend`` on the ready queue ``path_name`` ends (0: none)."""
        ...
