"""An egress path's connection slots and rates, held in the throttle stores.

Connection slots are leases: one of the path's ``connection_limit`` and one of each of its
``additional_connection_limits`` (named, so shared by every path naming them, as in
KumoMTA). With Redis (or the node's store of ``serve --workers N``) the limits hold across
every node or worker. The message and connection rates (``max_message_rate``,
``additional_message_rate_throttles``, ``max_connection_rate``) are GCRA throttles in the
same stores. Limits marked ``force_local`` stay in this process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from kumocore.queue.path_states import CONNECTION_LIMITED, CONNECTION_RATE_THROTTLED, PathStates

if TYPE_CHECKING:
    from kumocore.config import EgressPathConfig
    from kumocore.queue.egress import EgressShared
    from kumocore.throttle.spec import ThrottleSpec
    from kumocore.throttle.store import Lease, ThrottleStore

log = structlog.get_logger("kumocore.egress")

#: How long a connection slot lease lives before it must be renewed; a crashed node's
#: leases lapse after this.
LEASE_SECONDS = 300.0

#: How often an idle connection asks whether another worker waits for its slot. One
#: answer serves every idle connection of the path (with the node's store each question
#: is a round trip to the supervisor). Backing off instead left a batch's last messages
#: waiting about a second longer in the benchmark.
YIELD_CHECK_SECONDS = 0.25

#: The longest a connection waits for the message rate before handing its slot back.
MAX_RATE_WAIT = 5.0


@dataclass(frozen=True, slots=True)
class Slot:
    """A held connection slot: the leases of the path's ``connection_limit`` and of each
    of its ``additional_connection_limits``, with the stores that granted them."""

    leases: tuple[tuple[ThrottleStore, Lease], ...]


class PathThrottles:
    """The slots and rates of one path, named after it (``path_name``); ``wake`` is
    called when a rate that refused would admit again."""

    __slots__ = ("_name", "_shared", "_wake", "_wanted", "states")

    def __init__(self, shared: EgressShared, path_name: str, wake: Callable[[], None]) -> None:
        self._shared, self._name, self._wake = shared, path_name, wake
        self._wanted: tuple[float, bool] = (0.0, False)  # (asked at, answer): see wanted
        #: Why the path is held back now (``GET /api/admin/ready-q-states/v1``).
        self.states = PathStates()

    async def acquire(self, config: EgressPathConfig) -> Slot | None:
        """A connection slot, or None when the path's connection limit, or one of its
        additional limits, is reached."""
        limits = [(f"kumomta.connection_limit.{self._name}", config.connection_limit)]
        limits += list(config.additional_connection_limits.items())
        held: list[tuple[ThrottleStore, Lease]] = []
        for key, spec in limits:
            store = self._shared.throttle_store(bool(getattr(spec, "force_local", False)))
            try:
                lease = await store.acquire_lease(key, int(spec.limit), LEASE_SECONDS)
            except Exception as exc:
                self.states.enter(CONNECTION_LIMITED, f"Error acquiring {key}: {exc}")
                await self.release(Slot(tuple(held)))
                raise
            if lease is None:
                self.states.enter(CONNECTION_LIMITED, f"TooManyLeases for {key}")
                await self.release(Slot(tuple(held)))
                return None
            held.append((store, lease))
        self.states.leave(CONNECTION_LIMITED)
        return Slot(tuple(held))

    @staticmethod
    async def keep(slot: Slot | None) -> None:
        """Renew a long-lived connection's leases before they lapse (a lapsed lease would
        let the fleet open one connection too many)."""
        if slot is None:
            return
        for store, lease in slot.leases:
            if lease.expires - time.monotonic() > LEASE_SECONDS / 3:
                continue
            try:
                await store.renew_lease(lease, LEASE_SECONDS)
            except Exception as exc:  # lapsed already (e.g. Redis was away): keep going
                log.warning("connection slot lease could not be renewed", error=str(exc))

    @staticmethod
    async def release(slot: Slot | None) -> None:
        if slot is None:
            return
        for store, lease in slot.leases:
            try:
                await store.release_lease(lease)
            except Exception as exc:  # a lease that is not released lapses on its own
                log.debug("lease release failed", error=str(exc))

    async def wanted(self, slot: Slot | None) -> bool:
        """Whether a unit of one of the slot's limits was just refused to someone else (the
        node's other workers share its connection limits): an idle connection then gives
        its slot back instead of sitting on it for ``idle_timeout``. One answer is shared
        by the path's idle connections for YIELD_CHECK_SECONDS (they hold the same
        limits). Stores without that signal (Redis) never ask for it."""
        asked_at, answer = self._wanted
        if time.monotonic() - asked_at < YIELD_CHECK_SECONDS:
            return answer
        answer = await self._ask_wanted(slot)
        self._wanted = (time.monotonic(), answer)
        return answer

    @staticmethod
    async def _ask_wanted(slot: Slot | None) -> bool:
        if slot is None:
            return False
        for store, lease in slot.leases:
            wanted = getattr(store, "lease_wanted", None)
            try:
                if wanted is not None and await wanted(lease.key):
                    return True
            except Exception as exc:  # the store is away: keep the connection, as before
                log.debug("lease contention check failed", error=str(exc))
        return False

    async def message_rate(self, config: EgressPathConfig) -> bool:
        """Wait until the path's ``max_message_rate`` and each of its
        ``additional_message_rate_throttles`` (named, shared by every path naming them)
        admit one more message."""
        if not await self._admit(config.max_message_rate, "max_message_rate"):
            return False
        for name, spec in config.additional_message_rate_throttles.items():
            if not await self._admit(spec, name, shared=True):
                return False
        return True

    async def connection_rate(self, config: EgressPathConfig) -> bool:
        """Wait until the path's ``max_connection_rate`` admits one more connection."""
        return await self._admit(config.max_connection_rate, "max_connection_rate",
                                 state=CONNECTION_RATE_THROTTLED)  # fmt: skip

    async def _admit(self, spec: ThrottleSpec | None, what: str, *, shared: bool = False,
                     state: str | None = None) -> bool:  # fmt: skip
        """Wait until the throttle ``spec`` (one of the path's rates) admits one more.

        False when the wait would exceed :data:`MAX_RATE_WAIT`: the caller then gives its
        work back, and the path is woken again once the throttle would admit it.
        """
        if spec is None:
            return True
        from kumocore.throttle.store import rate_key

        store = self._shared.throttle_store(bool(spec.force_local))
        key = rate_key(what if shared else f"kumomta.{what}.{self._name}", spec)
        waited = 0.0
        while True:
            result = await store.throttle(key, spec)
            if state is not None:  # kept while throttled, even past the wait given up on
                if not result.throttled:
                    self.states.leave(state)
                else:
                    self.states.enter(state, f"{what} throttling for {result.retry_after:.3f}s")
            if not result.throttled:
                return True
            if waited + result.retry_after > MAX_RATE_WAIT:
                asyncio.get_running_loop().call_later(result.retry_after, self._wake)
                return False
            await asyncio.sleep(result.retry_after)
            waited += result.retry_after
