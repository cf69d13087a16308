"""RedisThrottleStore: fleet-wide throttles and connection limits, degrading to local ones.

Every node pointed at the same Redis shares one GCRA bucket per throttle key and one lease
set per connection limit. If Redis stops answering, the store does not fail deliveries:
it logs once, answers from its own in-process store (limits then hold per node, not for
the fleet), probes Redis again every ``probe_interval`` seconds, and logs again when Redis
is back and fleet-wide limits are in force once more.
"""

from __future__ import annotations

import enum
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from kumocore import ConfigError, redis_service_label
from kumocore.throttle import (
    Lease,
    LeaseLostError,
    LocalThrottleStore,
    ThrottleResult,
    ThrottleSpec,
)
from kumocore_redis_throttles import scripts
from kumocore_redis_throttles.timing import PING, QUERY, SCRIPT, timed

if TYPE_CHECKING:
    from kumocore_redis_throttles.options import RedisOptions

log = structlog.get_logger("kumocore.redis_throttles")

T = TypeVar("T")


class _Outage(enum.Enum):
    DOWN = "down"


_DOWN = _Outage.DOWN


def _outage_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "Redis is not answering", as opposed to a bug in a command."""
    from redis import exceptions as e

    return (e.ConnectionError, e.TimeoutError, e.ClusterError, e.SlotNotCoveredError,
            e.ReadOnlyError, e.TryAgainError, OSError, TimeoutError)  # fmt: skip


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class RedisThrottleStore:
    """A :class:`kumocore.throttle.ThrottleStore` kept in Redis, shared by every node."""

    name = "redis"

    def __init__(
        self,
        client: Any,
        *,
        label: str,
        has_redis_cell: bool = False,
        local: LocalThrottleStore | None = None,
        probe_interval: float = 1.0,
        service: str | None = None,
    ) -> None:
        """``client`` is a connected ``redis.asyncio`` client; ``label`` names the node(s)
        in logs (password redacted), ``service`` in ``redis_operation_latency``
        (:attr:`RedisOptions.service`). Use :meth:`connect` rather than calling this."""
        self._client = client
        self.label = label
        self.service = service or redis_service_label((label,))
        self.has_redis_cell = has_redis_cell
        self.local = local or LocalThrottleStore()
        self.probe_interval = probe_interval
        self._outage_errors = _outage_errors()
        self._down_since: float | None = None
        self._next_probe = 0.0
        self._closed = False

    @classmethod
    async def connect(
        cls, options: RedisOptions, *, probe_interval: float = 1.0
    ) -> RedisThrottleStore:
        """Connect, PING, detect redis-cell and load the scripts; ConfigError naming the
        node when Redis cannot be used (a fleet silently on per-node limits is worse)."""
        client = options.connect()
        service = options.service
        try:
            await timed(service, PING, client.ping())
            has_cell = await _has_redis_cell(client, service)
            for script in scripts.ALL_SCRIPTS:
                await timed(service, QUERY, client.script_load(script.source))
        except Exception as err:
            await client.aclose()
            reason = str(err) or type(err).__name__
            raise ConfigError(
                f"kumo.configure_redis_throttles: cannot use redis node {options.label}: {reason}"
            ) from err
        log.info("redis throttles configured", node=options.label, redis_cell=has_cell)
        return cls(client, label=options.label, has_redis_cell=has_cell,
                   probe_interval=probe_interval, service=service)  # fmt: skip

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable and limits are enforced per node only."""
        return self._down_since is not None

    # ------------------------------------------------------------------ rate throttles

    async def throttle(self, key: str, spec: ThrottleSpec, quantity: int = 1) -> ThrottleResult:
        if quantity < 0:
            raise ValueError(f"throttle quantity must not be negative, got {quantity}")
        if not spec.force_local:
            # CL.THROTTLE is one command; the GCRA is a script (KumoMTA's operations).
            operation = QUERY if self.has_redis_cell else SCRIPT
            result = await self._redis(operation, self._throttle_redis, key, spec, quantity)
            if result is not _DOWN:
                return result
        return self.local.throttle_now(key, spec, quantity)

    async def _throttle_redis(self, key: str, spec: ThrottleSpec, quantity: int) -> ThrottleResult:
        if self.has_redis_cell:
            # max_burst = capacity - 1 gives redis-cell the same admission as the local store.
            reply = await self._client.execute_command(
                "CL.THROTTLE", key, spec.capacity - 1, spec.limit, spec.period, quantity
            )
            return scripts.cell_result(reply)
        reply = await scripts.GCRA(
            self._client, (key,), (spec.interval_ns / 1000, spec.capacity, quantity)
        )
        return scripts.gcra_result(reply)

    # ------------------------------------------------------------------ leases

    async def acquire_lease(self, key: str, limit: int, duration: float) -> Lease | None:
        token = uuid.uuid4().hex  # unique across nodes: members of one shared sorted set
        granted = await self._redis(SCRIPT, scripts.ACQUIRE, self._client, (key,),
                                    (token, limit, _ms(duration)))  # fmt: skip
        if granted is _DOWN:
            return await self.local.acquire_lease(key, limit, duration)
        if int(granted) != 1:
            return None
        return Lease(key, token, time.monotonic() + duration, self.name)

    async def renew_lease(self, lease: Lease, duration: float) -> None:
        if lease.origin != self.name:  # granted by the local store during an outage
            await self.local.renew_lease(lease, duration)
            return
        renewed = await self._redis(SCRIPT, scripts.RENEW, self._client, (lease.key,),
                                    (lease.token, _ms(duration)))  # fmt: skip
        if renewed is _DOWN:
            # Nothing to renew against; keep going. If the outage outlasts the lease, its
            # entry lapses in Redis, which is the safe direction for a limit.
            return
        if int(renewed) != 1:
            raise LeaseLostError(lease)
        lease.expires = time.monotonic() + duration

    async def release_lease(self, lease: Lease) -> None:
        if lease.origin != self.name:
            await self.local.release_lease(lease)
            return
        # During an outage the release is skipped: the entry lapses at its expiry.
        await self._redis(QUERY, self._client.zrem, lease.key, lease.token)

    # ------------------------------------------------------------------ automation

    def automation_store(self) -> Any:
        """Traffic shaping automation state in this Redis (``subscribe = {'redis-throttles'}``)."""
        from kumocore_redis_throttles.automation import RedisActionStore

        return RedisActionStore(self._client, self.label, self.service)

    # ------------------------------------------------------------------ outage handling

    async def _redis(self, operation: str, op: Callable[..., Awaitable[T]],
                     *args: Any) -> T | _Outage:
        """Run ``op`` against Redis (timed as ``operation``: ``query``, ``script``), or
        return ``_DOWN`` so the caller answers locally."""
        if self._closed:
            return _DOWN
        if self._down_since is not None:
            now = time.monotonic()
            if now < self._next_probe:
                return _DOWN  # don't pay a failed connect on every call during an outage
            # Claim this probe before awaiting, so concurrent callers don't all probe.
            self._next_probe = now + self.probe_interval
        try:
            result = await timed(self.service, operation, op(*args))
        except self._outage_errors as err:
            self._went_down(err)
            return _DOWN
        if self._down_since is not None:
            self._came_back()
        return result

    def _went_down(self, err: BaseException) -> None:
        now = time.monotonic()
        self._next_probe = now + self.probe_interval
        if self._down_since is None:  # log once per outage, not once per call
            self._down_since = now
            log.warning("redis throttles unreachable: limits now hold per node, not fleet-wide",
                        node=self.label, error=str(err) or type(err).__name__)  # fmt: skip

    def _came_back(self) -> None:
        assert self._down_since is not None
        outage = time.monotonic() - self._down_since
        self._down_since = None
        log.info("redis throttles reachable again: fleet-wide limits restored",
                 node=self.label, outage_seconds=round(outage, 1))  # fmt: skip

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._client.aclose()
        await self.local.close()


async def _has_redis_cell(client: Any, service: str) -> bool:
    """Whether the server has ``CL.THROTTLE`` (the redis-cell module, or a server with it
    built in). The command name "COMMAND INFO" as one word skips redis-py's reply parser,
    which cannot read the ``[nil]`` answered for an unknown command."""
    from redis.exceptions import ResponseError

    try:
        reply = await timed(service, QUERY, client.execute_command("COMMAND INFO", "CL.THROTTLE"))
    except ResponseError:
        return False
    return any(item is not None for item in reply or ())
