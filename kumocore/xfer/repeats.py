"""Repeated transfers of one message: answered with the id it got the first time.

A source that dies (or times out) after the target stored a message but before it read
the answer still holds the message, and sends it again. The target remembers, per
process, which source message (``xfer_prior_id``: the source's spool id, which survives
its restarts) became which of its own: a repeat whose first copy this node still holds is
answered ``200`` with that copy's id and not stored twice; one arriving while the first
copy is still being received is answered ``503`` (the source retries shortly).

Bounded: the last :data:`REMEMBERED` transfers. Not shared between the worker processes
of ``serve --workers N`` nor kept over a restart; a repeat landing on another worker, or
after the first copy left this node, is stored again (both copies are logged ``XferIn``
with the same ``xfer_prior_id``, so it is never a silent duplicate).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

__all__ = ["IN_PROGRESS", "REMEMBERED", "Repeats"]

REMEMBERED = 100_000
#: The placeholder of a transfer being received.
IN_PROGRESS = ""


class Repeats:
    def __init__(self, limit: int = REMEMBERED) -> None:
        self.limit = limit
        self._ids: OrderedDict[str, str] = OrderedDict()

    def begin(self, prior_id: str, still_held: Callable[[str], bool]) -> str | None:
        """None: receive it (marked in progress); ``IN_PROGRESS``: a copy is being
        received; else the id of the copy this node holds."""
        known = self._ids.get(prior_id)
        if known is not None and (known == IN_PROGRESS or still_held(known)):
            return known
        self._ids[prior_id] = IN_PROGRESS
        self._ids.move_to_end(prior_id)
        while len(self._ids) > self.limit:
            self._ids.popitem(last=False)
        return None

    def done(self, prior_id: str, new_id: str | None) -> None:
        """The outcome of :meth:`begin`'s receive: stored as ``new_id``, or not (None)."""
        if new_id is None:
            self._ids.pop(prior_id, None)
        elif prior_id in self._ids:
            self._ids[prior_id] = new_id
