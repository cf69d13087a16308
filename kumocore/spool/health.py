"""Whether the spools accept writes, and holding delivery while they do not.

KumoMTA calls a spool *unhealthy* while it is not accepting writes (its RocksDB spool
latches that on an I/O error) and, with ``kumo.suspend_delivery_when_spool_unhealthy``
true (the default), holds delivery until it recovers: a message delivered while its
spool record cannot be removed would be delivered again after a restart.

kumocore's equivalent: a failed ``put``/``delete`` of a spool
(:class:`~kumocore.spool.recovering.RecoveringSpool` reports it) marks the spools
unhealthy; every :data:`PROBE_INTERVAL` seconds a :class:`SpoolHealth` then writes and
deletes a probe record in each spool (through the spool's own reopening), and the first
round in which both succeed marks them healthy again. While unhealthy, :data:`HOLD`
says why: new SMTP connections get ``421 4.3.2 <host> the spool is not accepting
writes. Try later`` and HTTP injection and liveness ``503`` with that text, as in
KumoMTA; and with suspension on, ready queues open no connection, and every message
that would be attempted is sent back to its scheduled queue with a ``Delayed`` record
and an attempt counted (:mod:`kumocore.queue.spool_hold`), as KumoMTA does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from kumocore.spool.store import MessageStore

log = structlog.get_logger("kumocore.spool")

#: KumoMTA's text for the condition.
UNHEALTHY_REASON = "the spool is not accepting writes"
#: Seconds between two probes of an unhealthy spool.
PROBE_INTERVAL = 1.0
#: Written then deleted by a probe. The quarantine prefix keeps start-up recovery from
#: taking a probe record left by a crash for a message (and the orphan collection of the
#: data spool removes it there).
PROBE_KEY = "quarantine:kumocore-spool-health-probe"


class DeliveryHold:
    """Process-wide: whether delivery is held (every ready queue reads it), and why
    reception is refused (KumoMTA's ``spool_unhealthy_reason``)."""

    def __init__(self) -> None:
        #: Read by every ready queue before it connects or takes a message.
        self.active = False
        #: While unhealthy: read by every new SMTP connection and HTTP injection.
        self.reason: str | None = None
        #: ``kumo.suspend_delivery_when_spool_unhealthy`` (KumoMTA's default: true).
        self.enabled = True

    def set(self, unhealthy: bool) -> bool:
        """Hold or release; True when delivery was held and no longer is."""
        self.reason = UNHEALTHY_REASON if unhealthy else None
        held = unhealthy and self.enabled
        released = self.active and not held
        self.active = held
        return released


HOLD = DeliveryHold()


def suspend_delivery_when_spool_unhealthy(enabled: bool) -> None:
    """Whether delivery pauses while a spool fails its writes (default true): ready
    queues then hold their messages until a probe write succeeds. Call it in ``init``."""
    if not isinstance(enabled, bool):
        from kumocore.errors import ConfigError

        raise ConfigError(
            f"kumo.suspend_delivery_when_spool_unhealthy: expected a boolean, got {enabled!r}"
        )
    HOLD.enabled = enabled


class SpoolHealth:
    """Tracks one node's spools: unhealthy from a failed write until a probe succeeds."""

    def __init__(self, hold: DeliveryHold = HOLD, interval: float = PROBE_INTERVAL) -> None:
        self.hold = hold
        self.interval = interval
        self.unhealthy = False
        self._store: MessageStore | None = None
        self._task: asyncio.Task[None] | None = None
        self._on_release: Callable[[], None] = lambda: None
        self._on_hold: Callable[[], object] = lambda: None

    def reason(self) -> str | None:
        """KumoMTA's ``spool_unhealthy_reason``: None while writes succeed."""
        return UNHEALTHY_REASON if self.unhealthy else None

    def write_failed(self) -> None:
        """A spool write failed (called by the spool wrapper): probe until one works."""
        if not self.unhealthy:
            self.unhealthy = True
            log.error("spool is unhealthy: a write failed", delivery_held=self.hold.enabled)
            self.hold.set(True)
            if self.hold.active:
                self._on_hold()
        if self._store is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._probe_until_healthy(), name="spool-health"
            )

    def start(self, store: MessageStore, on_release: Callable[[], None],
              on_hold: Callable[[], object] = lambda: None) -> None:  # fmt: skip
        """Probe ``store``'s spools when a write fails; ``on_hold`` sends the messages
        of the ready queues back when delivery is held (:mod:`kumocore.queue.spool_hold`),
        ``on_release`` wakes the ready queues once a held delivery may go on."""
        self._store, self._on_release, self._on_hold = store, on_release, on_hold
        if self.unhealthy:  # a write failed before the node was wired
            self.write_failed()
            if self.hold.active:
                on_hold()

    async def _probe_until_healthy(self) -> None:
        try:
            while self.unhealthy:
                await asyncio.sleep(self.interval)
                if await self._probe():
                    self.unhealthy = False
                    log.warning("spool is healthy again: writes succeed")
                    if self.hold.set(False):
                        self._on_release()
        finally:
            self._task = None

    async def _probe(self) -> bool:
        store = self._store
        if store is None:
            return False
        try:
            for spool in (store.data, store.meta):
                await spool.put(PROBE_KEY, b"")
                await spool.delete(PROBE_KEY)
        except Exception as exc:
            log.debug("spool probe failed", error=repr(exc))
            return False
        return True

    async def stop(self) -> None:
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.unhealthy = False
        self.hold.set(False)
        self.hold.enabled = True  # the policy's setting ends with the node (tests run many)
