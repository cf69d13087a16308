"""New connections per client as a token bucket: ``max_connection_rate_per_peer`` of the
ESMTP and HTTP listeners.

One address that opens and closes connections as fast as it can stays within
``max_connections_per_peer`` (it never holds many at once), yet an adversary round's
STARTTLS flood of 400-500 handshakes a second from one address filled a core of the SMTP
listener, and other clients' replies waited up to 100 ms. A rate per client bounds it
before any banner or handshake work.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from kumocore.reception.client_net import client_net

if TYPE_CHECKING:
    from collections.abc import Callable

    from kumocore.throttle.spec import ThrottleSpec

__all__ = ["MAX_TRACKED_PEERS", "ConnectionRates"]

#: Clients whose rates (or, in the SMTP listener, AUTH failures) are remembered; the
#: oldest is forgotten beyond this, so a client with many addresses cannot grow the table
#: without bound.
MAX_TRACKED_PEERS = 10_000


class ConnectionRates:
    """New connections per client (an IPv4 address, an IPv6 /64) as a token bucket per
    client: KumoMTA's throttle (GCRA, as :class:`kumocore.throttle.local.LocalThrottleStore`)
    kept in this listener, one number per client.

    A spec ``N/period`` admits ``N`` connections at once (``max_burst`` lowers that), then
    one every ``period / N``: a client that keeps under the rate is never refused, one
    that keeps over it gets exactly the rate. A refused connection is not charged.

    Off unless ``max_connection_rate_per_peer`` is set, like Postfix's
    ``smtpd_client_connection_rate_limit``: an injector that opens one connection per
    message would meet any default, and ``max_connections_per_peer`` (on, 50) already
    bounds what one client holds. The memory is bounded: at most ``max_tracked`` clients
    are remembered, the least recently seen forgotten first (it then starts with a full
    bucket; each connection, refused or not, makes its client the most recent, so a
    flooding client is forgotten only if ``max_tracked`` other clients connect between
    two of its connections), and a few whose bucket has refilled are dropped with each
    admission.
    """

    def __init__(self, max_tracked: int = MAX_TRACKED_PEERS,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        """``clock`` gives nanoseconds; tests pass a fake one to step time exactly."""
        self.max_tracked = max_tracked
        self._clock = clock
        #: The bucket's theoretical arrival time (ns) per client, least recently seen first.
        self._tats: OrderedDict[str, int] = OrderedDict()

    def admit(self, ip: str, spec: ThrottleSpec) -> bool:
        """Charge one connection from ``ip``'s client; False (nothing charged) when
        that would exceed ``spec``. O(1)."""
        key = client_net(ip)
        now = self._clock()
        tats = self._tats
        interval = spec.interval_ns
        tat = tats.get(key)
        ahead = tat - now if tat is not None and tat > now else 0
        if ahead + interval > interval * spec.capacity:
            tats.move_to_end(key)  # ahead > 0: the client is tracked, and now the newest
            return False
        tats[key] = now + ahead + interval
        tats.move_to_end(key)
        # Forget at most two clients whose buckets are full again (the same as unknown
        # ones), so the table follows the clients of the last period; then the cap.
        for _ in range(2):
            oldest = next(iter(tats))
            if tats[oldest] > now:
                break
            del tats[oldest]
        while len(tats) > self.max_tracked:
            tats.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._tats)
