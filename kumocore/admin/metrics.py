"""Prometheus metrics: ``/metrics`` (text format 0.0.4) and ``/metrics.json``.

Nothing is counted twice: a :class:`KumocoreCollector` reads the live counters the queue
manager, the log dispatcher and the hook caller already keep, at scrape time. Each node
has its own :class:`CollectorRegistry`, held by its :class:`~kumocore.node.services.Services`
(never the global one: tests start many nodes in one process).

Names follow KumoMTA where it has the metric (``total_messages_delivered``,
``scheduled_count``...), unprefixed and without a ``_total`` suffix, so KumoMTA dashboards
work unchanged; kumocore's own metrics are prefixed ``kumocore_``. prometheus_client's
text encoder would rename a counter ``x`` to ``x_total``, so :func:`render_text` writes the
(simple) text format itself from the collected families.

Labelled series are capped at :data:`MAX_SERIES` per metric; the rest are summed into one
series labelled ``other``, so a flood of one-off domains cannot blow up Prometheus.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from kumocore import __version__
from kumocore.admin.series_cap import capped_family, single_family
from kumocore.node.node_metrics import ReceptionCounter

if TYPE_CHECKING:
    from kumocore.node.services import Services

__all__ = [
    "CONTENT_TYPE",
    "MAX_SERIES",
    "OTHER",
    "KumocoreCollector",
    "ReceptionCounter",
    "reception_counter",
    "registry_for",
    "render_json",
    "render_text",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
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


def _labelled(name: str, typ: str, label: str, values: Mapping[str, float]) -> Metric:
    """One family with one label, at most MAX_SERIES series (read at each scrape)."""
    return capped_family(name, _HELP[name], typ, (label,), values, MAX_SERIES, OTHER)


class KumocoreCollector(Collector):
    """Reads one node's live counters and queue sizes at scrape time."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterable[Metric]:
        yield _labelled("kumocore_build_info", "gauge", "version", {__version__: 1})
        received = self.services.metrics.receptions.counts
        yield _labelled("total_messages_received", "counter", "service", received)
        yield from self._queue_metrics()
        yield from self._log_metrics()
        yield from self._hook_metrics()
        yield _labelled("dane_result_count", "counter", "result",
                        self.services.queues.dane_counts)
        from kumocore.admin.latency_metrics import latency_metrics

        yield from latency_metrics(self.services, MAX_SERIES, OTHER)
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

    def _queue_metrics(self) -> Iterator[Metric]:
        manager = self.services.queues
        from kumocore.admin.outcome_metrics import outcome_metrics

        yield from outcome_metrics(manager.outcomes.provider_counts, manager.outcomes.counters,
                                   manager.paths.values(), MAX_SERIES, OTHER)  # fmt: skip
        from kumocore.admin.scheduled_metrics import scheduled_aggregates
        from kumocore.admin.summary import ready_entries, scheduled_counts

        ready = ready_entries(manager)
        yield _single("kumocore_messages_queued", "gauge", len(manager.queued))
        scheduled = scheduled_counts(manager)
        yield _labelled("scheduled_count", "gauge", "queue", scheduled)
        yield from scheduled_aggregates(manager.scheduled_totals, MAX_SERIES, OTHER)
        counts = {e["name"]: e["count"] for e in ready}
        yield _labelled("ready_count", "gauge", "queue", counts)
        from kumocore.admin.connection_metrics import connection_metrics

        yield from connection_metrics(manager.paths.values(), manager.egress.connections_opened,
                                      self.services.metrics.smtp_server, MAX_SERIES, OTHER)
        yield _single("scheduled_queue_count", "gauge", len(manager.scheduled))
        delayed = manager.delay_counts
        yield _labelled("delayed_due_to_message_rate_throttle", "counter", "queue",
                        delayed.by_rate)  # fmt: skip
        yield _labelled("delayed_due_to_throttle_insert_ready", "counter", "queue",
                        delayed.by_insert_throttle)  # fmt: skip
        from kumocore.admin.queue_internal_metrics import event_metrics, queue_internal_metrics

        yield from queue_internal_metrics(manager, MAX_SERIES, OTHER)
        yield from event_metrics(self.services.hooks.caller.timings, MAX_SERIES, OTHER)
        from kumocore.admin.provider_metrics import provider_metrics

        yield from provider_metrics(manager.outcomes.provider_counts,
                                    manager.scheduled_totals.providers, manager.paths.values(),
                                    MAX_SERIES, OTHER)  # fmt: skip
        aborts = manager.egress.watchdog_aborts
        yield _labelled("dispatcher_watchdog_aborted_total", "counter", "service", aborts)
        admin = manager.admin
        rules = {"bounce": len(admin.list_bounces()), "suspend": len(admin.list_suspensions())}
        yield _labelled("kumocore_admin_rules", "gauge", "kind", rules)

    def _log_metrics(self) -> Iterator[Metric]:
        stats: Mapping[str, Mapping[str, int]] = self.services.logs.stats()
        for key in ("written", "dropped", "errors", "shed"):
            values = {sink: counts.get(key, 0) for sink, counts in stats.items()}
            yield _labelled(f"kumocore_log_sink_{key}_total", "counter", "sink", values)

    def _hook_metrics(self) -> Iterator[Metric]:
        timings = self.services.hooks.caller.timings
        calls = {name: t.calls for name, t in timings.items()}
        yield _labelled("kumocore_hook_calls_total", "counter", "hook", calls)
        seconds = {name: t.seconds for name, t in timings.items()}
        yield _labelled("kumocore_hook_seconds_total", "counter", "hook", seconds)


# ---------------------------------------------------------------------- exposition
# prometheus_client leaves this untyped; the annotation keeps mypy --strict satisfied.
_go_float: Callable[[float], str] = floatToGoString
_TYPE_NAMES = {
    "unknown": "untyped",
    "info": "gauge",
    "stateset": "gauge",
    "gaugehistogram": "histogram",
}


def _escape(value: str, *, quote: bool = True) -> str:
    # HELP text escapes backslash and newline; label values also escape the double quote.
    value = value.replace("\\", r"\\").replace("\n", r"\n")
    return value.replace('"', r"\"") if quote else value


def _exposed_name(metric: Metric) -> str:
    # prometheus_client's own counters name the family "x" and the samples "x_total";
    # ours name both "x". Announce the name the samples actually carry.
    total = metric.name + "_total"
    if metric.type == "counter" and any(s.name == total for s in metric.samples):
        return total
    return metric.name


def go_float(value: float) -> str:
    """A sample value as Prometheus' text format writes it (``30.0``, ``+Inf``)."""
    return _go_float(value)


def help_line(name: str, documentation: str) -> str:
    return f"# HELP {name} {_escape(documentation, quote=False)}\n"


def type_line(name: str, kind: str) -> str:
    return f"# TYPE {name} {_TYPE_NAMES.get(kind, kind)}\n"


def format_sample_line(name: str, labels: Mapping[str, str], value: float) -> str:
    text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{text}}} {_go_float(value)}\n" if text else f"{name} {_go_float(value)}\n"


def render_text(registry: CollectorRegistry) -> bytes:
    """Prometheus text exposition format 0.0.4, sample names exactly as collected."""
    out: list[str] = []
    for metric in registry.collect():
        name = _exposed_name(metric)
        out.append(help_line(name, metric.documentation))
        out.append(type_line(name, metric.type))
        for sample in metric.samples:
            if sample.name == metric.name + "_created":
                continue  # OpenMetrics-only series; the 0.0.4 format has no place for it
            out.append(format_sample_line(sample.name, sample.labels, sample.value))
    return "".join(out).encode("utf-8")


def render_json(registry: CollectorRegistry) -> dict[str, Any]:
    """``/metrics.json``: ``{name: {"type", "help", "value"}}``.

    ``value`` is a number for an unlabelled metric, else ``{label: {label_value: number}}``
    (multi-label families nest in label-name order: ``{label: {value: {label2: ...}}}``).
    """
    result: dict[str, Any] = {}
    for metric in registry.collect():
        for sample in metric.samples:
            entry = result.setdefault(
                sample.name,
                {
                    "type": _TYPE_NAMES.get(metric.type, metric.type),
                    "help": metric.documentation,
                    "value": {},
                },
            )
            if not sample.labels:
                entry["value"] = sample.value
                continue
            node = entry["value"]
            items = sorted(sample.labels.items())
            for key, label_value in items[:-1]:
                node = node.setdefault(key, {}).setdefault(label_value, {})
            node.setdefault(items[-1][0], {})[items[-1][1]] = sample.value
    return result
