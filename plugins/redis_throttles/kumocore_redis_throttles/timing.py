"""KumoMTA's ``redis_operation_latency`` for this plugin's commands.

Each command the store sends is timed from the call until its reply (or failure) and
recorded by kumocore (:func:`kumocore.observe_redis_latency`) under the service's label,
the operation KumoMTA's throttles would name (``ping``, ``query`` for a plain command,
``script`` for a Lua script) and ``ok``/``error``. A cancelled command is not recorded
(KumoMTA records none either): it neither succeeded nor failed.
"""

from __future__ import annotations

from collections.abc import Awaitable
from time import perf_counter
from typing import TypeVar

from kumocore import observe_redis_latency

T = TypeVar("T")

PING = "ping"
QUERY = "query"
SCRIPT = "script"


async def timed(service: str, operation: str, call: Awaitable[T]) -> T:
    """Await ``call`` (one Redis operation) and record how long it took."""
    started = perf_counter()
    try:
        result = await call
    except Exception:
        observe_redis_latency(service, operation, False, perf_counter() - started)
        raise
    observe_redis_latency(service, operation, True, perf_counter() - started)
    return result
