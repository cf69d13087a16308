"""Prometheus metrics: ``/metrics`` (text format 0.0.4) and ``/metrics.json``.

Nothing is counted twice: a :class:`KumocoreCollector` reads the live counters the queue
manager, the log dispatcher and the hook caller already keep, at scrape time. Each node
has its own :class:`CollectorRegistry`, held by its :class:`~kumocore.node.services.Services`
(never the global one: tests start many nodes in one process).

Names follow KumoMTA where it has the metric (``total_messages_delivered``,
``scheduled_count``...), unprefixed and without a ``_total`` suffix, so KumoMTA dashboards
work unchanged; kumocore's own metrics are prefixed ``kumocore_``. The text and JSON
forms are written by :mod:`kumocore.admin.exposition`.

Labelled series are capped at :data:`MAX_SERIES` per metric; the rest are summed into one
series labelled ``other``, so a flood of one-off domains cannot blow up Prometheus.
Ranking 100,000 series to keep 500 takes time, so the collector is a stream of steps
(:meth:`KumocoreCollector.stream`) that ``/metrics`` runs a slice at a time
(:mod:`kumocore.admin.scrape`); ``collect()`` runs it whole, for the registry's callers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from kumocore import __version__
from kumocore.admin.exposition import CONTENT_TYPE, go_float, render_json, render_text
from kumocore.admin.series_cap import (
    Families,
    capped_series,
    families,
    single_family,
    stepped,
    table_steps,
)
from kumocore.node.node_metrics import ReceptionCounter

if TYPE_CHECKING:
    from kumocore.node.services import Services
    from kumocore.queue.path import EgressPath
    from kumocore.queue.schedule import ScheduledQueue

__all__ = [
    "CONTENT_TYPE",
    "MAX_SERIES",
    "OTHER",
    "KumocoreCollector",
    "ReceptionCounter",
    "go_float",
    "reception_counter",
    "registry_for",
    "render_json",
    "render_text",
]

MAX_SERIES = 500
OTHER = "other"


def reception_counter(services: Services) -> ReceptionCounter:
    """The node's reception counter."""
    return services.metrics.receptions


def registry_for(services: Services) -> CollectorRegistry:
    """The node's registry: kumocore's collector plus the standard ``process_*`` one."""
    registry = services.metrics.registry
    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(KumocoreCollector(services))
        ProcessCollector(registry=registry)
        services.metrics.registry = registry
    return registry


_HELP = {
    "kumocore_build_info": "kumocore version (always 1).",
    "total_messages_received": "Messages accepted, per listener service.",
    "kumocore_messages_queued": "Messages this node owns (any state).",
    "scheduled_count": "Messages waiting in each scheduled queue.",
    "ready_count": "Messages in each ready queue (egress path).",
    "scheduled_queue_count": "Scheduled queues (those emptied count until reaped).",
    "delayed_due_to_message_rate_throttle": "Due messages sent back to wait by their "
    "queue's max_message_rate, per scheduled queue.",
    "delayed_due_to_throttle_insert_ready": "Due messages sent back to wait by the "
    "throttle_insert_ready_queue event, per scheduled queue.",
    "kumocore_admin_rules": "Active administrative rules, by kind.",
    "kumocore_log_sink_written_total": "Log records written, per sink.",
    "kumocore_log_sink_dropped_total": "Log records dropped (still pending at close), per sink.",
    "kumocore_log_sink_shed_total": "Rejection records shed while the sink was backlogged.",
    "kumocore_log_sink_errors_total": "Failed log sink writes, per sink.",
    "kumocore_hook_calls_total": "Hook (event) invocations, per hook.",
    "kumocore_hook_seconds_total": "Time spent in hook implementations, per hook.",
    "dane_result_count": "DANE policy decisions on the delivery path, by result.",
    "dispatcher_watchdog_aborted_total": "Connections aborted by the progress watchdog.",
}


def _single(name: str, kind: str, value: float) -> Metric:
    return single_family(name, _HELP[name], kind, value)


def _labelled(name: str, typ: str, label: str, values: Mapping[str, float]) -> Families:
    """One family with one label, at most MAX_SERIES series (read at each scrape)."""
    return capped_series(name, _HELP[name], typ, (label,), values, MAX_SERIES, OTHER)


class KumocoreCollector(Collector):
    """Reads one node's live counters and queue sizes at scrape time."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterable[Metric]:
        return families(self.stream())

    def stream(self) -> Families:
        """Every family, with the points where a scrape may let the loop run
        (:mod:`kumocore.admin.series_cap`); ``/metrics`` runs it in slices."""
        yield from _labelled("kumocore_build_info", "gauge", "version", {__version__: 1})
        received = self.services.metrics.receptions.counts
        yield from _labelled("total_messages_received", "counter", "service", received)
        yield from self._queue_metrics()
        yield from self._log_metrics()
        yield from self._hook_metrics()
        yield from _labelled("dane_result_count", "counter", "result",
                             self.services.queues.dane_counts)  # fmt: skip
        from kumocore.admin.latency_metrics import latency_metrics

        yield from latency_metrics(self.services, MAX_SERIES, OTHER)
        yield from stepped(self._node_metrics())

    def _node_metrics(self) -> Iterator[Metric]:
        """The families of other parts of the node (each small: bounded by configuration)."""
        from kumocore.queue.source_health import source_health_metrics

        yield from source_health_metrics(self.services.queues.egress.source_health)
        from kumocore.dns.mx_stats import mx_metrics

        yield from mx_metrics(self.services.resolver.mx_stats)
        from kumocore.tsa.metrics import tsa_metrics

        yield from tsa_metrics(self.services.tsa)
        from kumocore.node.memory_metrics import memory_metrics, spool_health_metrics

        yield from memory_metrics()
        yield from spool_health_metrics(p.path for p in self.services.storage.paths)
        from kumocore.node.disk_metrics import disk_free_metrics

        yield from disk_free_metrics((p.name, p.path) for p in self.services.storage.paths)
        from kumocore.node.cpu_usage import cpu_usage_metrics
        from kumocore.node.spool_stats import spool_stats_metrics

        yield from cpu_usage_metrics(self.services.metrics.cpu)
        store = self.services.store
        yield from spool_stats_metrics((store.data, store.meta), self.services.storage.paths)
        from kumocore.node.cache_stats import cache_metrics

        yield from cache_metrics()
        from kumocore.dkim.stats import dkim_metrics

        yield from dkim_metrics()
        from kumocore.http.guard_metrics import http_guard_metrics

        yield from http_guard_metrics(self.services.metrics.http_guards)

    def _queue_metrics(self) -> Families:
        manager = self.services.queues
        from kumocore.admin.outcome_metrics import outcome_metrics

        yield from outcome_metrics(manager.outcomes.provider_counts, manager.outcomes.counters,
                                   manager.paths.values(), MAX_SERIES, OTHER)  # fmt: skip
        from kumocore.admin.scheduled_metrics import scheduled_aggregates

        yield _single("kumocore_messages_queued", "gauge", len(manager.queued))
        # 100,000 scheduled queues: their counts are read a chunk at a time.
        waiting = yield from table_steps(list(manager.scheduled.values()), _waiting)
        yield from _labelled("scheduled_count", "gauge", "queue", waiting)
        yield from scheduled_aggregates(manager.scheduled_totals, MAX_SERIES, OTHER)
        # Only the counts: the queue summary's entries (sorted, with each path's stats)
        # cost a scrape 0.1 s at 10,000 paths.
        ready = yield from table_steps(list(manager.paths.values()), _ready)
        yield from _labelled("ready_count", "gauge", "queue", ready)
        from kumocore.admin.connection_metrics import connection_metrics

        yield from connection_metrics(manager.paths.values(), manager.egress.connections_opened,
                                      self.services.metrics.smtp_server, MAX_SERIES, OTHER)
        yield _single("scheduled_queue_count", "gauge", len(manager.scheduled))
        delayed = manager.delay_counts
        yield from _labelled("delayed_due_to_message_rate_throttle", "counter", "queue",
                             delayed.by_rate)  # fmt: skip
        yield from _labelled("delayed_due_to_throttle_insert_ready", "counter", "queue",
                             delayed.by_insert_throttle)  # fmt: skip
        from kumocore.admin.queue_internal_metrics import event_metrics, queue_internal_metrics

        yield from queue_internal_metrics(manager, MAX_SERIES, OTHER)
        yield from event_metrics(self.services.hooks.caller.timings, MAX_SERIES, OTHER)
        from kumocore.admin.provider_metrics import provider_metrics

        yield from provider_metrics(manager.outcomes.provider_counts,
                                    manager.scheduled_totals.providers, manager.paths.values(),
                                    MAX_SERIES, OTHER)  # fmt: skip
        aborts = manager.egress.watchdog_aborts
        yield from _labelled("dispatcher_watchdog_aborted_total", "counter", "service", aborts)
        admin = manager.admin
        rules = {"bounce": len(admin.list_bounces()), "suspend": len(admin.list_suspensions())}
        yield from _labelled("kumocore_admin_rules", "gauge", "kind", rules)

    def _log_metrics(self) -> Families:
        stats: Mapping[str, Mapping[str, int]] = self.services.logs.stats()
        for key in ("written", "dropped", "errors", "shed"):
            values = {sink: counts.get(key, 0) for sink, counts in stats.items()}
            yield from _labelled(f"kumocore_log_sink_{key}_total", "counter", "sink", values)

    def _hook_metrics(self) -> Families:
        timings = self.services.hooks.caller.timings
        calls = {name: t.calls for name, t in timings.items()}
        yield from _labelled("kumocore_hook_calls_total", "counter", "hook", calls)
        seconds = {name: t.seconds for name, t in timings.items()}
        yield from _labelled("kumocore_hook_seconds_total", "counter", "hook", seconds)


def _waiting(queue: ScheduledQueue) -> tuple[str, float]:
    return queue.name, queue.waiting


def _ready(path: EgressPath) -> tuple[str, float]:
    return path.key.name, len(path)
