"""Ready queues under memory pressure, and held while the spool is unhealthy.

* Low memory (:data:`kumocore.node.memory.MEMORY` ``.low``): a message entering a ready
  queue leaves its body on disk, per the path's ``low_memory_reduction_policy``
  (``no_memory_reduction_policy`` once over the soft limit), as KumoMTA's ready queue
  insertion does. kumocore keeps a message's meta in memory either way, so
  ``ShrinkData`` and ``ShrinkDataAndMeta`` both drop the body; ``NoShrink`` keeps it.
* Over the soft limit: every ready queue of the node drops the bodies it holds, once, on
  the transition (KumoMTA's ``shrink_ready_queue_due_to_low_mem``; the server registers
  :func:`shrink_all` over its queue manager's paths).
* Over the soft limit, a ready queue opens at most 2 connections (KumoMTA's
  ``ideal_connection_count`` while it sheds load; ``EgressPath._wanted_connections``).
* An unhealthy spool: :data:`kumocore.spool.health.HOLD` holds every ready queue (its
  ``suspended`` reads it: no connection opens), and the messages that would be attempted
  go back to their scheduled queue (:mod:`kumocore.queue.spool_hold`); the server wakes
  the ready queues when it clears.

A body is only dropped when the data spool is not this process's memory (then a drop
frees nothing); delivery reloads it from the spool, whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from kumocore.node.memory import MEMORY

if TYPE_CHECKING:
    from kumocore.config import EgressPathConfig
    from kumocore.mail.message import Message
    from kumocore.spool.store import MessageStore


class _Shared(Protocol):
    @property
    def store(self) -> MessageStore | None: ...


class EgressPath(Protocol):
    """What is used here of :class:`kumocore.queue.path.EgressPath` (which imports this
    module)."""

    @property
    def config(self) -> EgressPathConfig: ...
    @property
    def shared(self) -> _Shared: ...
    @property
    def messages(self) -> Iterable[Message]: ...


def _may_drop(path: EgressPath, over_limit: bool) -> bool:
    config = path.config
    policy = config.no_memory_reduction_policy if over_limit else config.low_memory_reduction_policy
    store = path.shared.store
    return policy != "NoShrink" and store is not None and not store.bodies_in_memory


def entering(path: EgressPath, message: Message) -> None:
    """``message`` enters ``path``'s ready queue while memory is low."""
    if _may_drop(path, MEMORY.over_limit):
        message.release_data()


def shrink_all(paths: Iterable[EgressPath]) -> int:
    """Drop the body of every message waiting in ``paths``; how many were dropped."""
    dropped = 0
    for path in list(paths):
        if not _may_drop(path, True):
            continue
        for message in path.messages:
            # (``data`` of a message without a shared body is its own bytes: no copy)
            if message.shared is not None or message.data:
                message.release_data()
                dropped += 1
    return dropped
