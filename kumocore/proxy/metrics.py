"""KumoProxy's counters (crates/proxy-server/src/metrics.rs), labelled by listener.

Names and labels are KumoMTA's, so its dashboards read kumocore's proxy as they read
KumoProxy: ``proxy_connections_accepted_total``, ``proxy_connections_failed_total``,
``proxy_connections_completed_total``, ``proxy_tls_handshake_failures_total``,
``proxy_active_connections``, ``proxy_bytes_client_to_dest_total``,
``proxy_bytes_dest_to_client_total`` and ``proxy_outbound_connections_total`` (labels
``listener`` and ``destination``). kumocore adds ``proxy_connections_refused_total``:
clients closed at once because the listener had ``max_connections`` clients.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

#: (name without _total, help) of the per-listener counters.
COUNTERS = (
    ("proxy_connections_accepted", "Incoming connections accepted by the proxy"),
    ("proxy_connections_failed", "Connections that failed during handshake or proxying"),
    ("proxy_connections_completed", "Proxy sessions that completed successfully"),
    ("proxy_tls_handshake_failures", "TLS handshake failures"),
    ("proxy_bytes_client_to_dest", "Bytes passed from clients to destinations"),
    ("proxy_bytes_dest_to_client", "Bytes passed from destinations to clients"),
    ("proxy_connections_refused", "Clients closed at once: the listener was at "
     "max_connections (kumocore)"),
)  # fmt: skip
#: Destinations kept per listener in proxy_outbound_connections_total; KumoMTA prunes
#: that registry for the same reason: one series per destination grows without end.
MAX_DESTINATIONS = 1000


@dataclass
class ListenerMetrics:
    """The counters of one listener (its bound address is the ``listener`` label)."""

    listener: str
    counts: Counter[str] = field(default_factory=Counter)
    active: int = 0
    destinations: Counter[str] = field(default_factory=Counter)

    def add(self, name: str, amount: int = 1) -> None:
        self.counts[name] += amount

    def outbound(self, destination: str) -> None:
        if destination in self.destinations or len(self.destinations) < MAX_DESTINATIONS:
            self.destinations[destination] += 1


class ProxyCollector(Collector):
    """Exposes the listeners' counters to a registry (``/metrics`` and ``/metrics.json``)."""

    def __init__(self, listeners: Callable[[], Iterable[ListenerMetrics]]) -> None:
        self.listeners = listeners

    def collect(self) -> Iterator[Metric]:
        listeners = list(self.listeners())
        for name, doc in COUNTERS:
            family = CounterMetricFamily(name, doc, labels=["listener"])
            for m in listeners:
                family.add_metric([m.listener], m.counts[name])
            yield family
        active = GaugeMetricFamily(
            "proxy_active_connections", "Connections being proxied now", labels=["listener"]
        )
        for m in listeners:
            active.add_metric([m.listener], m.active)
        yield active
        outbound = CounterMetricFamily("proxy_outbound_connections",
                                       "Outbound connections made, by destination",
                                       labels=["listener", "destination"])  # fmt: skip
        for m in listeners:
            for destination, count in m.destinations.items():
                outbound.add_metric([m.listener, destination], count)
        yield outbound
