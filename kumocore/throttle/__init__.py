"""Throttles: KumoMTA's rate specs (GCRA) and connection limits (leases).

:mod:`.spec` parses ``"100/h"``-style specs, :mod:`.store` is the contract every store
implements, :mod:`.local` is the in-process store. Shared stores come from plugins.

Owns rate and connection-limit arithmetic and the store contract. It does not own where
limits are applied (egress paths in :mod:`kumocore.queue.slots`, listeners, the policy's
own ``kumo.make_throttle``).
"""

from __future__ import annotations

from kumocore.throttle.local import LocalThrottleStore
from kumocore.throttle.spec import LimitSpec, ThrottleSpec
from kumocore.throttle.store import (
    Lease,
    LeaseLostError,
    ThrottleResult,
    ThrottleStore,
    connection_limit_key,
    rate_key,
)

__all__ = [
    "Lease",
    "LeaseLostError",
    "LimitSpec",
    "LocalThrottleStore",
    "ThrottleResult",
    "ThrottleSpec",
    "ThrottleStore",
    "connection_limit_key",
    "rate_key",
]
