"""KumoMTA's queue-internals, connection-failure and event metrics for ``/metrics``, read
at scrape time from counts kept where things happen:

* ``ready_full`` (``service`` = ``<protocol>:<ready queue>``) and
  ``delayed_due_to_ready_queue_full`` (``queue`` = scheduled queue): a message routed to
  a ready queue that held ``max_ready`` messages (or had others waiting beyond them).
  Unlike KumoMTA, kumocore does not send it back to its scheduled queue with a
  ``Delayed`` record: it waits in the path's overflow with its body on disk and moves up
  as the queue drains (:meth:`kumocore.queue.path_queue.PathQueue.add`). A path's
  series stays as long as the path; a scheduled queue's goes when the queue is reaped.
* ``total_readyq_runs``: connection-opening passes of the egress paths
  (:mod:`kumocore.queue.egress_counts`).
* ``total_qmaint_runs``: passes of the scheduler over its due messages. kumocore has one
  scheduler for all scheduled queues, as KumoMTA's default ``SingletonTimerWheel``
  strategy has one wheel; it wakes when a message is due (or an earlier one is
  scheduled) rather than on a fixed tick, so the rate follows the traffic.
* ``scheduled_queue_maintainer_count``: scheduled queues with a maintainer task of their
  own. Always 0: kumocore has none (nor does KumoMTA under its default strategy; kumocore
  refuses the per-queue ``strategy`` values).
* ``bind_failures`` and ``proxy_connection_failures`` (no labels, as KumoMTA's).
* ``lua_event_started`` (``event``): policy event calls that ran an implementation, as
  they started (:class:`kumocore.policy.hookcall.HookTiming`); with
  ``lua_event_latency_count`` (the completed ones) it gives the calls in flight.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import Metric

from kumocore.admin.series_cap import Families, capped_series, chunks, single_family
from kumocore.policy.hookcall import event_name
from kumocore.queue.watchdog import service

if TYPE_CHECKING:
    from kumocore.policy.hookcall import HookTiming
    from kumocore.queue.manager import QueueManager

__all__ = ["HELP", "event_metrics", "queue_internal_metrics"]

HELP = {
    "ready_full": "Messages that found their ready queue holding max_ready messages and "
                  "waited beyond it, per ready queue.",
    "delayed_due_to_ready_queue_full": "Messages that found their ready queue holding "
                                       "max_ready messages and waited beyond it, per "
                                       "scheduled queue.",
    "total_readyq_runs": "Connection-opening passes of the ready queues.",
    "total_qmaint_runs": "Passes of the scheduler over the due messages of all scheduled "
                         "queues.",
    "scheduled_queue_maintainer_count": "Scheduled queues with a maintainer task of their "
                                        "own (none: one scheduler serves them all).",
    "bind_failures": "Direct egress connections that could not bind their source address.",
    "proxy_connection_failures": "Egress connections whose HAProxy or SOCKS5 server did "
                                 "not take the TCP connection.",
    "lua_event_started": "Policy event calls that ran an implementation, counted as they "
                         "start, by event.",
}


def queue_internal_metrics(manager: QueueManager, cap: int, other: str) -> Families:
    """The queue-internals and connection-failure families of one node's queues."""
    full: dict[str, int] = {}
    for some in chunks(manager.paths.values()):  # 100,000 paths: a step between chunks
        full.update((service(path), path.ready_full) for path in some if path.ready_full)
        yield None
    yield from _family("ready_full", "service", full, cap, other)
    yield from _family("delayed_due_to_ready_queue_full", "queue",
                       manager.delay_counts.by_ready_full, cap, other)  # fmt: skip
    counts = manager.egress.counts
    yield _single("total_readyq_runs", "counter", counts.readyq_runs)
    yield _single("total_qmaint_runs", "counter", manager.scheduler.runs)
    yield _single("scheduled_queue_maintainer_count", "gauge", 0)
    yield _single("bind_failures", "counter", counts.bind_failures)
    yield _single("proxy_connection_failures", "counter", counts.proxy_connection_failures)


def event_metrics(timings: Mapping[str, HookTiming], cap: int, other: str) -> Families:
    """``lua_event_started``, by KumoMTA's event name (the hook's without ``kumo_``)."""
    started = {event_name(hook): t.started for hook, t in timings.items() if t.started}
    yield from _family("lua_event_started", "event", started, cap, other)


def _single(name: str, kind: str, value: float) -> Metric:
    return single_family(name, HELP[name], kind, value)


def _family(name: str, label: str, values: Mapping[str, int], cap: int, other: str) -> Families:
    return capped_series(name, HELP[name], "counter", (label,), values, cap, other)
