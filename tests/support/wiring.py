"""Wiring a runtime's services without a server (no listeners, no spool files).

Tests of the queues, intake or admin API give the parts they care about (a recording log
sink, a broken spool...) and get the rest as memory-only defaults, wired exactly as
``Server.start`` wires them (:func:`kumocore.node.server.wire_services`).
"""

from __future__ import annotations

from kumocore.logs.dispatch import LogDispatcher
from kumocore.node.runtime import Runtime
from kumocore.node.server import wire_services
from kumocore.node.services import Services
from kumocore.spool.base import MemorySpool
from kumocore.spool.storage_guard import StorageMonitor
from kumocore.spool.store import MessageStore
from kumocore.throttle.local import LocalThrottleStore
from kumocore.throttle.store import ThrottleStore


def memory_store() -> MessageStore:
    return MessageStore(MemorySpool("data"), MemorySpool("meta"))


def wire(
    runtime: Runtime,
    *,
    store: MessageStore | None = None,
    logs: LogDispatcher | None = None,
    throttles: ThrottleStore | None = None,
) -> Services:
    """``runtime.services`` over memory spools, a log dispatcher with no sink (not
    started) and a local throttle store, unless given."""
    return wire_services(
        runtime,
        store=store or memory_store(),
        logs=logs or LogDispatcher([]),
        throttles=throttles or LocalThrottleStore(),
        storage=StorageMonitor([]),
    )
