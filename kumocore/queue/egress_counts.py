"""KumoMTA's node-wide egress counters, for ``/metrics`` (unlabelled, as KumoMTA's):

* ``total_readyq_runs``: passes of a ready queue's maintenance. KumoMTA runs one
  maintainer task per ready queue, woken when messages arrive or connections end and
  at its idle timers; kumocore's equivalent is an egress path's connection-opening pass
  (``EgressPath._pump``), started by ``wake()`` when the path has messages and no pass
  is running. A path with nothing to send starts no pass, so this moves only with work.
* ``bind_failures``: a direct connection could not bind the egress source's
  ``source_address`` (:class:`kumocore.delivery.source_bind.SourceBindFailed`);
* ``proxy_connection_failures``: the TCP connection to the source's HAProxy or SOCKS5
  server failed or timed out. A proxy that took the connection and then refused or
  failed its handshake is not counted, as in KumoMTA.

The two failure kinds are told by :func:`kumocore.delivery.source_failure.counted_as`
and counted by :mod:`kumocore.queue.connect` once per address tried, as KumoMTA counts
them once per connection attempt. Each is one attribute increment.
"""

from __future__ import annotations

__all__ = ["BIND_FAILURES", "PROXY_CONNECTION_FAILURES", "EgressCounts"]

#: The names of KumoMTA's two connection failure counters.
BIND_FAILURES = "bind_failures"
PROXY_CONNECTION_FAILURES = "proxy_connection_failures"


class EgressCounts:
    """The counters of one node's egress paths (they outlive the paths)."""

    __slots__ = ("bind_failures", "proxy_connection_failures", "readyq_runs")

    def __init__(self) -> None:
        self.readyq_runs = 0
        self.bind_failures = 0
        self.proxy_connection_failures = 0

    def connect_failed(self, counter: str) -> None:
        """A connection attempt failed in the way ``counter`` names (one of the two)."""
        if counter == BIND_FAILURES:
            self.bind_failures += 1
        elif counter == PROXY_CONNECTION_FAILURES:
            self.proxy_connection_failures += 1
