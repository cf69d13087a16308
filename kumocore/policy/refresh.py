"""When a configuration a handler returned is asked for again: ``refresh_strategy``.

kumocore keeps the answers of ``get_queue_config`` and ``get_egress_path_config`` instead
of asking the policy for every message. How long an answer stays in use is the answer's own
choice, as in KumoMTA:

* ``refresh_strategy = 'Ttl'`` (the default): for ``refresh_interval`` after it was made;
* ``refresh_strategy = 'Epoch'``: until the configuration epoch changes (a monitored policy
  or data file was edited, ``kumo.bump_config_epoch()``; see
  :func:`kumocore.hookspecs.kumo_register_config_epoch`), however long that takes.

Owns that one decision, so that every cache of handler answers makes it the same way. It
does not own the caches themselves (reception's intake, routing's egress paths).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

#: The strategy that waits for the configuration epoch instead of a timer.
EPOCH = "Epoch"


class Refreshable(Protocol):
    """What :class:`Freshness` reads of a configuration (queue or egress path)."""

    @property
    def refresh_strategy(self) -> str: ...

    @property
    def refresh_interval(self) -> float: ...


class Freshness:
    """When one configuration answer was made: the clock and the configuration epoch."""

    __slots__ = ("epoch", "loaded_at")

    def __init__(self, epoch: int, loaded_at: float | None = None) -> None:
        self.epoch = epoch
        self.loaded_at = time.monotonic() if loaded_at is None else loaded_at

    @classmethod
    def now(cls, config: Refreshable, current_epoch: Callable[[], int]) -> Freshness:
        """Stamp an answer just made. The epoch is only read for ``Epoch`` answers: the
        readers are plugin code, and the ``Ttl`` default never needs them."""
        return cls(current_epoch() if config.refresh_strategy == EPOCH else 0)

    def due(
        self, config: Refreshable, current_epoch: Callable[[], int], now: float | None = None
    ) -> bool:
        """Whether ``config``, stamped with this, must be asked for again."""
        if config.refresh_strategy == EPOCH:
            return current_epoch() != self.epoch
        clock = time.monotonic() if now is None else now
        return clock - self.loaded_at > float(config.refresh_interval)
