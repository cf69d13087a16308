"""The memory a listener's unfinished DATA sections may hold (``max_data_buffered``).

One budget per listener, charged as a message's bytes arrive and given back once its
transaction was answered (:mod:`kumocore.reception.smtp.data`). A client outside
``relay_hosts`` draws on it through a :class:`PeerShare`: all of its sessions together
hold at most :attr:`DataBudget.peer_limit` bytes. Without that, one address (an outside
check) filled the whole budget with thirteen DATA sections kept alive by a byte every
30 s, and every other client's mail got ``452`` for as long as it kept them open.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["PEER_SHARE", "Budget", "DataBudget", "PeerShare"]

#: The share of a listener's budget one client address may hold: an eighth, but never
#: less than one message of ``max_message_size``.
PEER_SHARE = 8


class Budget(Protocol):
    """What the DATA reader charges: the listener's budget or one client's share of it."""

    refused: int

    def take(self, size: int) -> bool: ...

    def give(self, size: int) -> None: ...


class DataBudget:
    """Bytes of DATA held in memory by the sessions of one listener, at most ``limit``;
    at most ``peer_limit`` of them for any one client that draws on a :meth:`share`."""

    __slots__ = ("held", "held_by", "limit", "peer_limit", "refused")

    def __init__(self, limit: int, peer_limit: int | None = None) -> None:
        self.limit = limit
        self.peer_limit = limit if peer_limit is None else peer_limit
        self.held = 0
        #: Bytes held per client address (only while it holds some).
        self.held_by: dict[str, int] = {}
        self.refused = 0  # transactions refused for want of budget, for tests and metrics

    def take(self, size: int) -> bool:
        if self.held + size > self.limit:
            return False
        self.held += size
        return True

    def give(self, size: int) -> None:
        self.held -= size

    def share(self, peer: str | None) -> Budget:
        """The budget as the client at ``peer`` draws on it; ``None`` (a client in
        ``relay_hosts``) draws on the whole of it."""
        if peer is None or self.peer_limit >= self.limit:
            return self
        return PeerShare(self, peer)


class PeerShare:
    """One client address's draw on a :class:`DataBudget` (see the module doc)."""

    __slots__ = ("budget", "peer")

    def __init__(self, budget: DataBudget, peer: str) -> None:
        self.budget, self.peer = budget, peer

    @property
    def refused(self) -> int:
        return self.budget.refused

    @refused.setter
    def refused(self, count: int) -> None:
        self.budget.refused = count

    def take(self, size: int) -> bool:
        budget = self.budget
        held = budget.held_by.get(self.peer, 0)
        if held + size > budget.peer_limit or not budget.take(size):
            return False
        budget.held_by[self.peer] = held + size
        return True

    def give(self, size: int) -> None:
        budget = self.budget
        budget.give(size)
        left = budget.held_by.get(self.peer, 0) - size
        if left > 0:
            budget.held_by[self.peer] = left
        else:
            budget.held_by.pop(self.peer, None)
