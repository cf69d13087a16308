"""The throttle store contract: GCRA rate throttles and leased connection limits.

kumocore asks one store for every throttle decision. The in-process
:class:`~kumocore.throttle.local.LocalThrottleStore` is the built-in default; a plugin
(``kumocore-redis-throttles``) contributes a shared store through
``kumo_register_throttle_stores`` so that several nodes enforce one fleet-wide limit.

Key naming follows KumoMTA so that operators recognise the keys in Redis:

* rate throttles live under ``<name>:<limit>:<max_burst>:<period>`` (:func:`rate_key`),
  where ``name`` is e.g. ``kumomta.max_message_rate.<ready_queue_name>``. Encoding the
  spec in the key means changing a policy's rate starts a fresh bucket instead of
  misreading the old one.
* connection limits are lease sets named ``kumomta.connection_limit.<ready_queue_name>``
  (:func:`connection_limit_key`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

if TYPE_CHECKING:
    from kumocore.throttle.spec import ThrottleSpec


def rate_key(name: str, spec: ThrottleSpec) -> str:
    """The key a store keeps the state of throttle ``name`` under for ``spec``.

    ``rate_key("kumomta.httpinject.ratelimit", ThrottleSpec.parse("50/d"))`` is
    ``"kumomta.httpinject.ratelimit:50:50:86400"`` (max_burst defaults to the limit).
    """
    return name + spec.key_suffix


def connection_limit_key(ready_queue_name: str) -> str:
    """The lease-set key of a ready queue's ``connection_limit``, as KumoMTA names it."""
    return f"kumomta.connection_limit.{ready_queue_name}"


class ThrottleResult(NamedTuple):
    """The outcome of one throttle call (durations in seconds, fractional).

    A NamedTuple rather than a frozen dataclass: one is built per throttle call, and a
    frozen dataclass's ``__init__`` costs over twice as much (~330 ns against ~140 ns).

    ``remaining`` is how many more units would be admitted right now; ``reset_after`` is
    how long until the bucket is full again; ``retry_after`` is how long to wait before the
    refused request could succeed (0.0 when admitted; ``math.inf`` when the quantity asked
    for exceeds the whole burst and can never be admitted).
    """

    throttled: bool
    remaining: int
    reset_after: float
    retry_after: float


@dataclass(slots=True)
class Lease:
    """One held unit of a connection limit. Opaque to callers: pass it back to the store.

    ``expires`` is this node's ``time.monotonic()`` deadline: renew before it passes, or
    the unit is given back to the pool (that is what makes a crashed node's leases lapse).
    ``origin`` names the store that issued it, so a store that fell back to its local
    store while Redis was away can return the lease to the right place.
    """

    key: str
    token: str
    expires: float
    origin: str = "local"


class LeaseLostError(Exception):
    """A lease could not be renewed: it expired (or was released) before the renewal.

    Its unit may already belong to someone else; the holder should stop using it.
    """

    def __init__(self, lease: Lease) -> None:
        super().__init__(f"lease {lease.token} on {lease.key!r} is no longer held")
        self.lease = lease


@runtime_checkable
class ThrottleStore(Protocol):
    """Where GCRA throttle state and connection leases live (this process or Redis)."""

    #: Short name for logs and metrics: ``"local"``, ``"redis"``.
    name: str

    async def throttle(self, key: str, spec: ThrottleSpec, quantity: int = 1) -> ThrottleResult:
        """Charge ``quantity`` units to the bucket ``key``; a refused call charges nothing.

        ``key`` is used verbatim: build it with :func:`rate_key` so that a changed spec
        gets a fresh bucket, as in KumoMTA. Stores honour ``spec.force_local`` by keeping
        such throttles in this process.
        """
        ...

    async def acquire_lease(self, key: str, limit: int, duration: float) -> Lease | None:
        """Take one of ``limit`` units of ``key`` for ``duration`` seconds; None when full.

        A ``local:`` :class:`~kumocore.throttle.spec.LimitSpec` is the caller's business:
        ask the in-process store for it.
        """
        ...

    async def renew_lease(self, lease: Lease, duration: float) -> None:
        """Extend ``lease`` to ``duration`` seconds from now; raise :class:`LeaseLostError`
        when it has already lapsed."""
        ...

    async def release_lease(self, lease: Lease) -> None:
        """Give the unit back now. Releasing twice, or a lapsed lease, is harmless."""
        ...

    async def close(self) -> None:
        """Release connections. Safe to call more than once."""
        ...
