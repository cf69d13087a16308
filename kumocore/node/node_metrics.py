"""The metric state one node owns: counts only their source can take, and the registry.

Held by :class:`kumocore.node.services.Services` (one per started server), so nothing about a
node lives in module globals: tests start many nodes in one process, each with its own
counts and its own Prometheus registry (:mod:`kumocore.admin.metrics` builds it on first scrape).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kumocore.capped_keys import capped_key
from kumocore.node.cpu_usage import CpuUsageMonitor
from kumocore.node.latency import Histogram

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from kumocore.http.guard_metrics import GuardCounts

#: Local addresses with a ``smtp_server_rejections`` series of their own; later ones are
#: counted under :data:`OTHER_ADDRESS` (``total`` and ``other`` within the cap).
MAX_REJECTION_ADDRESSES = 500
OTHER_ADDRESS = "other"
_RESERVED_REJECTION_KEYS = frozenset({"total", OTHER_ADDRESS})


class ReceptionCounter:
    """Messages accepted (durable and queued) per listener service, for this process.

    Intake calls :meth:`add` once per accepted message; nothing else can tell a received
    message from a recovered one, so received is counted at the source, not derived.
    """

    def __init__(self) -> None:
        self.counts: dict[str, int] = {"esmtp_listener": 0, "http_listener": 0}

    def add(self, reception_protocol: str, count: int = 1) -> None:
        """Count ``count`` messages received over ``reception_protocol`` (``ESMTP``/``HTTP``)."""
        service = f"{reception_protocol.lower()}_listener"
        self.counts[service] = self.counts.get(service, 0) + count


class SmtpServerCounts:
    """KumoMTA's SMTP server metrics, kept by the ESMTP sessions of this process:

    * ``open``: connections open now (``connection_count{service="esmtp_listener"}``);
    * ``total``: connections accepted since start (``total_connection_count``);
    * ``denied``: connections turned away at once for a limit: ``421 4.3.2`` for memory
      or spool shedding, descriptors, ``max_connections`` and ``max_connections_per_peer``,
      ``421 4.7.0`` for ``max_connection_rate_per_peer`` (``total_connections_denied``);
    * ``rejections``: 4xx/5xx replies, by ``total`` and by the local address the client
      connected to, as the socket has it (``smtp_server_rejections``; not the ``421
      4.3.2`` load and shutdown replies, which KumoMTA leaves out too). A PROXY header or
      XCLIENT cannot add labels, but a host answering for a routed prefix (AnyIP) has
      as many addresses as clients connect to: :data:`MAX_REJECTION_ADDRESSES` of them
      get a series, the rest share ``other``.
    """

    __slots__ = ("denied", "open", "process_data", "read_data", "rejections", "total",
                 "transaction")

    def __init__(self) -> None:
        self.open = self.total = self.denied = 0
        self.rejections: dict[str, int] = {}
        #: ``smtpsrv_transaction_duration``: from an accepted MAIL FROM until the
        #: transaction ends (answered after DATA, or dropped by RSET/EHLO).
        self.transaction = Histogram()
        #: ``smtpsrv_read_data_duration``: from the ``354`` until the final dot is read.
        self.read_data = Histogram()
        #: ``smtpsrv_process_data_duration``: from the final dot until the reply is sent.
        self.process_data = Histogram()

    def rejected(self, local_address: str) -> None:
        rejections = self.rejections
        rejections["total"] = rejections.get("total", 0) + 1
        if local_address not in rejections:
            # A host answering for a whole routed prefix (AnyIP) has as many local
            # addresses as clients care to connect to: past the cap they share "other".
            local_address = capped_key(rejections, local_address, MAX_REJECTION_ADDRESSES,
                                       OTHER_ADDRESS, _RESERVED_REJECTION_KEYS)
        rejections[local_address] = rejections.get(local_address, 0) + 1


class NodeMetrics:
    """One node's reception counts and (once scraped) its Prometheus registry."""

    def __init__(self) -> None:
        self.receptions = ReceptionCounter()
        self.smtp_server = SmtpServerCounts()
        #: Built by :func:`kumocore.admin.metrics.registry_for` on the first scrape.
        self.registry: CollectorRegistry | None = None
        #: KumoMTA's CPU usage gauges; the server runs it (kumocore.node.cpu_usage).
        self.cpu = CpuUsageMonitor()
        #: The HTTP listeners' connection guards and ``listen`` addresses, from their
        #: bind (kumocore.http.server), for /metrics (kumocore.http.guard_metrics).
        self.http_guards: list[tuple[GuardCounts, str]] = []
