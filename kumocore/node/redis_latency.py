"""KumoMTA's ``redis_operation_latency``: every command a plugin sends to Redis, timed.

KumoMTA times each operation of its Redis client (``ping``, ``query``, ``script``) by the
``service`` it talks to and whether it succeeded (``status``: ``ok`` or ``error``), once per
process. kumocore's Redis users are plugins (the shared throttle store, the policies'
``redis.open``), so the histograms are here, behind two public functions:
:func:`redis_service_label` names a service as KumoMTA does, :func:`observe_redis_latency`
records one operation, :func:`timed_redis_operation` times one and records it.

Observations come from the event loop's thread (the Redis clients are asyncio ones), so
the plain histograms need no lock, as the node's others. The series are bounded: past
:data:`MAX_SERIES`, a new (service, operation, status) is recorded under service ``other``.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Iterable
from time import perf_counter
from typing import TypeVar
from urllib.parse import urlsplit

from prometheus_client.metrics_core import Metric

from kumocore.capped_keys import capped_entry
from kumocore.node.latency import Histogram, multi_label_family

__all__ = ["LABELS", "MAX_SERIES", "REDIS_LATENCY", "observe_redis_latency",
           "redis_latency_family", "redis_service_label", "timed_redis_operation"]

T = TypeVar("T")

#: The labels of each series, in the order of :data:`REDIS_LATENCY`'s keys.
LABELS = ("service", "operation", "status")
#: The most (service, operation, status) series kept apart; more go to service "other".
MAX_SERIES = 500
#: One histogram per (service, operation, status), for the whole process.
REDIS_LATENCY: dict[tuple[str, ...], Histogram] = {}
_HELP = "Seconds per operation sent to Redis, by service, operation and status."


def observe_redis_latency(service: str, operation: str, ok: bool, seconds: float) -> None:
    """Record one Redis ``operation`` (``"ping"``, ``"query"``, ``"script"``) sent to
    ``service`` (:func:`redis_service_label`) that took ``seconds``; ``ok`` is False when
    it failed (an error reply, a timeout, a lost connection)."""
    status = "ok" if ok else "error"
    key = (service, operation, status)
    histogram = REDIS_LATENCY.get(key)  # a known series: this one lookup
    if histogram is None:
        # MAX_SERIES is read here, not bound once: tests lower it for a while.
        histogram = capped_entry(REDIS_LATENCY, key, MAX_SERIES, ("other", operation, status),
                                 lambda _key: Histogram())  # fmt: skip
    histogram.observe(seconds)


async def timed_redis_operation(service: str, operation: str, call: Awaitable[T]) -> T:
    """Await ``call`` (one Redis ``operation`` sent to ``service``) and record how long it
    took, ``ok`` or ``error``. A cancelled call is not recorded (KumoMTA records none
    either): it neither succeeded nor failed."""
    started = perf_counter()
    try:
        result = await call
    except Exception:
        observe_redis_latency(service, operation, False, perf_counter() - started)
        raise
    observe_redis_latency(service, operation, True, perf_counter() - started)
    return result


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()


def redis_service_label(nodes: Iterable[str], username: str | None = None,
                        settings: object = None) -> str:
    """The ``service`` label of a Redis configuration, shaped as KumoMTA's:
    ``[username@]node[,node...]-<crc32>``, e.g. ``redis://127.0.0.1:6379/-1c291ca3``.

    The suffix tells apart configurations of the same nodes (``settings``: anything whose
    ``repr`` describes the rest of the configuration); it may change between versions.
    Passwords are shown as ``***`` and left out of the checksum."""
    shown = ",".join(_without_password(node) for node in nodes)
    prefix = f"{username}@" if username else ""
    crc = zlib.crc32(repr((shown, username, settings)).encode())
    return f"{prefix}{shown}-{crc:08x}"


def redis_latency_family() -> Metric:
    """``redis_operation_latency``: the process's series, for ``/metrics``."""
    return multi_label_family("redis_operation_latency", _HELP, LABELS, REDIS_LATENCY)
