"""KumoMTA's MX resolution counters, for ``/metrics``: ``dns_mx_resolve_status_ok``,
``dns_mx_resolve_status_fail``, ``dns_mx_resolve_cache_hit``,
``dns_mx_resolve_cache_miss`` and the ``dns_mx_resolve_in_progress`` gauge.

As KumoMTA counts them around ``MailExchanger::resolve``:

* every MX resolution ends as ok or as fail (a domain literal is ok, with no lookup);
* one answered from the resolver's cache of built MX sets is a hit;
* one that had to ask (its query may still be answered by the cache of DNS answers, or
  joined to a query already on its way) is a miss, and is in progress until it ends.

The resolver keeps them (:meth:`kumocore.dns.Resolver.lookup_mx`); a cache hit, the path
of nearly every routed message, costs one increment.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import Metric

__all__ = ["MxStats", "mx_metrics"]


class MxStats:
    """The counts of one resolver."""

    __slots__ = ("cache_hit", "cache_miss", "failed", "in_progress", "resolved")

    def __init__(self) -> None:
        self.cache_hit = 0  # ended ok from the cache of built MX sets
        self.cache_miss = 0  # had to ask
        self.resolved = 0  # ended ok otherwise (asked, or a domain literal)
        self.failed = 0
        self.in_progress = 0


_COUNTERS = (
    ("dns_mx_resolve_status_ok", "total number of MX resolutions that succeeded"),
    ("dns_mx_resolve_status_fail", "total number of MX resolutions that failed"),
    ("dns_mx_resolve_cache_hit", "total number of MX resolutions satisfied by the cache"),
    ("dns_mx_resolve_cache_miss", "total number of MX resolutions that had to ask DNS"),
)


def mx_metrics(stats: MxStats) -> Iterator[Metric]:
    """The four counters and the gauge."""
    values = (stats.cache_hit + stats.resolved, stats.failed, stats.cache_hit,
              stats.cache_miss)  # fmt: skip
    for (name, text), value in zip(_COUNTERS, values, strict=True):
        metric = Metric(name, text, "counter")
        metric.add_sample(name, {}, value)
        yield metric
    gauge = Metric("dns_mx_resolve_in_progress", "number of MX resolutions in progress", "gauge")
    gauge.add_sample("dns_mx_resolve_in_progress", {}, stats.in_progress)
    yield gauge
