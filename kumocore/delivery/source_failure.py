"""Which connection failures say the egress source is broken, not the destination.

KumoMTA's two source-health failure kinds (kumocore.queue.source_health counts and acts
on them):

* ``Unplumbed``: a direct connection's bind of the source's ``source_address`` failed
  with ``EADDRNOTAVAIL`` — the address is on no interface of this host;
* ``ProxyUnhealthy``: the source's HAProxy or SOCKS5 server refused the connection, was
  unreachable, or did not take it before the connect timeout; or the SOCKS5 proxy
  connected from another address than the source's (KumoMTA's proxy bind failure).

Anything else (the MX refused, the SOCKS5 proxy could not reach the MX, a slow greeting)
is about the destination and is not classified.

:func:`counted_as` names KumoMTA's counter a failure moves (kumocore.queue.egress_counts):
``bind_failures`` for any failed bind of a direct connection's source address,
``proxy_connection_failures`` for a proxy server that did not take the TCP connection
(refused, unreachable, or not before the connect timeout) — not for a proxy that took it
and then failed its handshake or connected from another address.
"""

from __future__ import annotations

import errno

from kumocore.delivery.proxy import Progress, ProxyUnreachable, ProxyWrongSource, Route
from kumocore.delivery.source_bind import SourceBindFailed
from kumocore.queue.egress_counts import BIND_FAILURES, PROXY_CONNECTION_FAILURES
from kumocore.queue.source_health import PROXY_UNHEALTHY, UNPLUMBED

__all__ = ["classify", "counted_as"]


def classify(exc: BaseException, route: Route, progress: Progress) -> str | None:
    """The source-health kind of ``exc``, raised opening a stream along ``route``; None
    when the failure is not the source's."""
    if route.protocol is None:
        if (route.source_ip is not None and isinstance(exc, OSError)
                and exc.errno == errno.EADDRNOTAVAIL):  # fmt: skip
            return UNPLUMBED
        return None
    if isinstance(exc, (ProxyUnreachable, ProxyWrongSource)):
        return PROXY_UNHEALTHY
    if isinstance(exc, TimeoutError) and not progress.proxy_connected:
        return PROXY_UNHEALTHY
    return None


def counted_as(exc: BaseException, route: Route, progress: Progress) -> str | None:
    """KumoMTA's counter of ``exc``, raised opening a stream along ``route``; None for a
    failure neither counter takes."""
    if route.protocol is None:
        return BIND_FAILURES if isinstance(exc, SourceBindFailed) else None
    if isinstance(exc, ProxyUnreachable):
        return PROXY_CONNECTION_FAILURES
    if isinstance(exc, TimeoutError) and not progress.proxy_connected:
        return PROXY_CONNECTION_FAILURES
    return None
