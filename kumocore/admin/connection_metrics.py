"""KumoMTA's connection and SMTP server metrics for ``/metrics``, labelled as KumoMTA
labels them (``service``):

* ``connection_count``: open sessions of each egress path (``<protocol>:<ready queue>``),
  their sum per protocol (``smtp_client``, ``lua``...), and the SMTP listener's open
  connections (``esmtp_listener``). As in KumoMTA, summing every series counts a delivery
  connection twice: select by service.
* ``total_connection_count``: the same, counting every connection since start. A path's
  own series goes with the path; the protocol's and the listener's stay.
* ``total_connections_denied``: SMTP connections turned away at once for a limit
  (``esmtp_listener``).
* ``smtp_server_rejections``: 4xx/5xx replies of the SMTP listener, ``total`` and per local
  address the clients connected to.

The counts are kept where they happen (:class:`kumocore.node.node_metrics.SmtpServerCounts`,
the egress paths); a scrape only reads them. Each family keeps its ``cap`` series (the
node-wide ones first, so they are never folded into ``other``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from kumocore.admin.series_cap import Families, capped_series, chunks
from kumocore.queue.watchdog import service

if TYPE_CHECKING:
    from kumocore.node.node_metrics import SmtpServerCounts

__all__ = ["HELP", "connection_metrics"]

HELP = {
    "connection_count": "Open connections: per egress path, per protocol, and of the SMTP "
                        "listener (esmtp_listener).",
    "total_connection_count": "Connections made since start: per egress path, per protocol, "
                              "and accepted by the SMTP listener.",
    "total_connections_denied": "SMTP connections turned away at once for a limit (load "
                                "shedding, max_connections, max_connections_per_peer, "
                                "max_connection_rate_per_peer).",
    "smtp_server_rejections": "4xx/5xx replies of the SMTP listener: total and per local "
                              "address.",
}


def connection_metrics(
    paths: Iterable[Any], opened_by_protocol: Mapping[str, int], smtp: SmtpServerCounts,
    cap: int, other: str,
) -> Families:
    """The four families; ``paths`` are the node's egress paths (``connections``,
    ``connections_opened``, ``key``)."""
    open_now: dict[str, int] = {"esmtp_listener": smtp.open}
    opened: dict[str, int] = {"esmtp_listener": smtp.total, **opened_by_protocol}
    for protocol in opened_by_protocol:
        open_now[protocol] = 0
    per_path_open: dict[str, int] = {}
    per_path_opened: dict[str, int] = {}
    for some in chunks(paths):  # 100,000 paths: a step between chunks
        for path in some:
            name = service(path)
            if path.connections:
                per_path_open[name] = path.connections
                kind = path.key.protocol_kind
                open_now[kind] = open_now.get(kind, 0) + path.connections
            if path.connections_opened:
                per_path_opened[name] = path.connections_opened
        yield None
    yield from _family("connection_count", "gauge", {**open_now, **per_path_open}, cap, other)
    yield from _family("total_connection_count", "counter", {**opened, **per_path_opened}, cap,
                       other)  # fmt: skip
    yield from _family("total_connections_denied", "counter", {"esmtp_listener": smtp.denied},
                       cap, other)  # fmt: skip
    yield from _family("smtp_server_rejections", "counter", smtp.rejections, cap, other)


def _family(name: str, kind: str, values: Mapping[str, int], cap: int, other: str) -> Families:
    return capped_series(name, HELP[name], kind, ("service",), values, cap, other)
