"""The HTTP listeners' connection guards in ``/metrics`` (kumocore's own families).

Each guard (:class:`~kumocore.http.connections.ConnectionGuard`) counts the connections it
refused or closed for a limit: over a connection cap or rate (``refused``), idle past
``keepalive_timeout`` (``idle``), headers slower than ``header_timeout``
(``slow_headers``), a response not read for ``response_write_timeout`` (``slow_reader``),
a TLS handshake that failed or never finished (``failed_handshake``). Without them an
operator could not tell an attack the guard is holding off from quiet traffic.

``kumocore_http_connections{listener}`` is the open connections of a listener and
``kumocore_http_connections_closed_total{listener,reason}`` the counts above; ``listener``
is the ``listen`` address. A guard is watched once its listener is bound, for as long as
the listener exists (weakly: a discarded listener leaves the families). Guards under one
address (a listener started again while the old one is still referenced) are added up,
so a series is never exported twice.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import Metric

if TYPE_CHECKING:
    from kumocore.http.connections import ConnectionGuard

__all__ = ["http_guard_metrics", "watch_guard"]

#: reason label → the guard's ``stats()`` key
REASONS = {"refused": "refused", "idle": "closed_idle",
           "slow_headers": "closed_slow_headers", "slow_reader": "closed_slow_readers",
           "failed_handshake": "failed_handshakes"}  # fmt: skip

_WATCHED: weakref.WeakKeyDictionary[ConnectionGuard, str] = weakref.WeakKeyDictionary()


def watch_guard(guard: ConnectionGuard, listener: str) -> None:
    """Export ``guard``'s counts under ``listener`` (its ``listen`` address)."""
    _WATCHED[guard] = listener


def http_guard_metrics(
    guards: Iterable[tuple[ConnectionGuard, str]] | None = None,
) -> Iterator[Metric]:
    """The two families, one series per watched listener (and reason)."""
    watched = list(_WATCHED.items() if guards is None else guards)
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
