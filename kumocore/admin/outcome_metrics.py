"""The delivery outcome counters for ``/metrics``, as KumoMTA labels them, and kumocore's
node-wide totals.

KumoMTA counts ``total_messages_delivered``, ``total_messages_transfail`` and
``total_messages_fail`` where a ready queue (an egress path) handles an attempt, labelled
``service``: the protocol (``smtp_client``, ``lua``...), kept for the process's life, and
the path itself (``smtp_client:<ready queue name>``), which goes when the path does.
Summing every series counts each attempt twice: dashboards select by service. kumocore
counts them so (:class:`kumocore.queue.provider_counts.ProviderCounts`), one per
recipient of a batch.

Outcomes decided before any path was involved (a routing failure, an expiry, an
administrative bounce) are in no KumoMTA series. kumocore's own totals count every
outcome record of the node, with or without a path:
``kumocore_messages_delivered_total``, ``kumocore_messages_transfail_total`` and
``kumocore_messages_fail_total`` (what the unlabelled ``total_messages_*`` counted before
they took KumoMTA's label), beside ``total_messages_expired`` and
``kumocore_messages_admin_bounced_total``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kumocore.admin.series_cap import Families, capped_series, chunks, single_family
from kumocore.queue.provider_counts import ProviderCounts
from kumocore.queue.watchdog import service

__all__ = ["outcome_metrics"]

#: KumoMTA's outcome (its metric names) → what it counts.
_BY_SERVICE = {
    "delivered": "Messages delivered over an egress path, per protocol and per path.",
    "transfail": "Delivery attempts over an egress path that failed transiently, per "
                 "protocol and per path.",
    "fail": "Delivery attempts over an egress path that failed permanently, per protocol "
            "and per path.",
}
#: kumocore's node-wide totals: (counter key in Outcomes.counters, name, help).
_TOTALS = (
    ("delivered", "kumocore_messages_delivered_total",
     "Messages delivered (2xx at end of data)."),
    ("transient", "kumocore_messages_transfail_total",
     "Transient failures of this node, with or without an egress path (each retry counts)."),
    ("bounced", "kumocore_messages_fail_total",
     "Messages that failed permanently: refused by the remote side or by a permanent "
     "routing error."),
    ("expired", "total_messages_expired", "Messages that expired (exceeded max_age)."),
    ("admin_bounced", "kumocore_messages_admin_bounced_total",
     "Messages bounced by an administrative bounce rule."),
)


def outcome_metrics(counts: ProviderCounts, totals: Mapping[str, int], paths: Iterable[Any],
                    cap: int, other: str) -> Families:  # fmt: skip
    """``paths``: the node's egress paths now (a path's own series goes with it)."""
    live: set[str] = set()
    for some in chunks(paths):  # 100,000 paths: a step between chunks
        live.update(map(service, some))
        yield None
    for outcome, documentation in _BY_SERVICE.items():
        values: dict[str, int] = dict(counts.by_protocol[outcome])  # first: never folded
        values.update((name, count) for name, count in counts.by_path[outcome].items()
                      if name in live)  # fmt: skip
        name = f"total_messages_{outcome}"
        yield from capped_series(name, documentation, "counter", ("service",), values, cap,
                                 other)  # fmt: skip
    for key, name, documentation in _TOTALS:
        yield single_family(name, documentation, "counter", totals.get(key, 0))
