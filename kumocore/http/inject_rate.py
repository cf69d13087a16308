"""``kumo.set_httpinject_recipient_rate_limit(SPEC)``: a recipient rate for HTTP injection.

As in KumoMTA, each ``POST /api/inject/v1`` request is charged its recipient count against
one throttle (key ``kumomta.httpinject.ratelimit``, in the shared throttle store unless the
spec says ``local:``) and sleeps until the throttle admits it; the limit covers every HTTP
listener of the node, ``nil`` removes it, and ``kumo.api.inject.inject_v1`` is not subject
to it. It is read per request, so a policy may change it at any time.

Two bounds KumoMTA lacks (docs/http-api.md "Recipient rate limit"):

* a request with more recipients than the throttle's burst is charged in burst-sized
  parts, each waiting for its turn (KumoMTA lets such a request through uncharged, which
  would let large batches bypass the limit);
* a request never sleeps longer than :data:`MAX_WAIT` in total: when the wait it needs
  would pass that, it is answered ``429`` with a JSON error and a ``Retry-After`` header
  instead of holding its connection (and an HTTP client's own timeout) indefinitely.
  The estimate is made before anything is charged; only a request that loses the race to
  other requests after it started waiting can be refused with part of its count charged.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kumocore.throttle.local import LocalThrottleStore
from kumocore.throttle.spec import ThrottleSpec
from kumocore.throttle.store import rate_key

if TYPE_CHECKING:
    from kumocore.throttle.store import ThrottleStore

#: The throttle's name, as KumoMTA names it (the store key adds the spec).
THROTTLE_NAME = "kumomta.httpinject.ratelimit"
#: The longest a request may sleep for the rate limit, in seconds.
MAX_WAIT = 300.0


class RateLimitExceeded(Exception):
    """The request would wait longer than :data:`MAX_WAIT`; ``retry_after`` in seconds."""

    def __init__(self, recipients: int, spec: ThrottleSpec, wait: float) -> None:
        self.retry_after = max(1, math.ceil(wait))
        super().__init__(
            f"{recipients} recipients exceed the HTTP injection recipient rate limit "
            f"({spec}) for at least {self.retry_after}s more, longer than a request may "
            f"wait ({MAX_WAIT:g}s); retry later or send smaller batches"
        )


class RecipientRateLimit:
    """The node's HTTP injection recipient rate: None, or a spec and where to count it."""

    def __init__(self, shared_store: Callable[[], ThrottleStore | None]) -> None:
        #: The node's shared throttle store once it runs (None before: counted locally).
        self._shared_store = shared_store
        self.spec: ThrottleSpec | None = None
        self._local = LocalThrottleStore()

    def set(self, spec: Any) -> None:
        """``kumo.set_httpinject_recipient_rate_limit(SPEC)``: a spec string, or nil."""
        self.spec = None if spec is None else ThrottleSpec.parse(spec)

    def _store(self, spec: ThrottleSpec) -> ThrottleStore:
        shared = None if spec.force_local else self._shared_store()
        return self._local if shared is None else shared

    async def admit(self, recipients: int) -> float:
        """Wait until ``recipients`` are admitted; returns the seconds waited. Raises
        :class:`RateLimitExceeded` when that would take longer than :data:`MAX_WAIT`."""
        spec = self.spec
        if spec is None:
            return 0.0
        loop = asyncio.get_running_loop()
        started = loop.time()
        # The least time the whole count needs, whatever the bucket holds now.
        floor = (recipients - spec.capacity) * spec.interval_ns / 1e9
        if floor > MAX_WAIT:
            raise RateLimitExceeded(recipients, spec, floor)
        key = rate_key(THROTTLE_NAME, spec)
        remaining = recipients
        while remaining:
            part = min(remaining, spec.capacity)
            result = await self._store(spec).throttle(key, spec, part)
            if not result.throttled:
                remaining -= part
                continue
            waited = loop.time() - started
            if waited + result.retry_after > MAX_WAIT:
                raise RateLimitExceeded(recipients, spec, result.retry_after)
            await asyncio.sleep(result.retry_after)
        return loop.time() - started
