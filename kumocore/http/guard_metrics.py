"""The HTTP listeners' connection guards in ``/metrics`` (kumocore's own families).

Each guard (:class:`~kumocore.http.connections.ConnectionGuard`) counts the connections it
refused or closed for a limit: over a connection cap or rate (``refused``), idle past
``keepalive_timeout`` (``idle``), headers slower than ``header_timeout``
(``slow_headers``), a response not read for ``response_write_timeout`` (``slow_reader``),
a TLS handshake that failed or never finished (``failed_handshake``). Without them an
operator could not tell an attack the guard is holding off from quiet traffic.

``kumocore_http_connections{listener}`` is the open connections of a listener and
``kumocore_http_connections_closed_total{listener,reason}`` the counts above; ``listener``
is the ``listen`` address. The node keeps its listeners' guards from their bind
(``NodeMetrics.http_guards``, so nothing about a node lives in this module). Guards under
one address (two listeners given the same ``listen``) are added up, so a series is never
exported twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from prometheus_client.metrics_core import Metric

__all__ = ["GuardCounts", "http_guard_metrics"]


class GuardCounts(Protocol):
    """What is exported of a guard (:class:`~kumocore.http.connections.ConnectionGuard`)."""

    def stats(self) -> dict[str, int]: ...


#: reason label → the guard's ``stats()`` key
REASONS = {"refused": "refused", "idle": "closed_idle",
           "slow_headers": "closed_slow_headers", "slow_reader": "closed_slow_readers",
           "failed_handshake": "failed_handshakes"}  # fmt: skip


def http_guard_metrics(guards: Iterable[tuple[GuardCounts, str]]) -> Iterator[Metric]:
    """The two families, one series per listener (and reason); none without listeners."""
    watched = list(guards)
    if not watched:
        return
    opened = Metric("kumocore_http_connections",
                    "Open connections of an HTTP listener", "gauge")  # fmt: skip
    closed = Metric("kumocore_http_connections_closed",
                    "HTTP connections an HTTP listener refused, or closed for a limit "
                    "(reason: refused, idle, slow_headers, slow_reader, failed_handshake)",
                    "counter")  # fmt: skip
    totals: dict[str, dict[str, int]] = {}
    for guard, listener in watched:
        total = totals.setdefault(listener, dict.fromkeys(["open", *REASONS.values()], 0))
        for key, value in guard.stats().items():
            if key in total:
                total[key] += value
    for listener, total in sorted(totals.items()):
        opened.add_sample("kumocore_http_connections", {"listener": listener}, total["open"])
        for reason, key in REASONS.items():
            closed.add_sample("kumocore_http_connections_closed_total",
                              {"listener": listener, "reason": reason}, total[key])  # fmt: skip
    yield opened
    yield closed
