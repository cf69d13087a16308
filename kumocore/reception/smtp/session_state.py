"""The state of one ESMTP connection: who the client is and which configuration serves it.

:class:`SessionState` is the bottom of :class:`kumocore.reception.smtp.session.EsmtpSession`
(above aiosmtpd's protocol, :mod:`kumocore.reception.smtp.protocol`): everything the
command handlers read and change of a session — the addresses (from the socket, a PROXY
header or XCLIENT), the listener's parameters for them (its ``peer``/``via`` overrides,
or what ``smtp_server_get_dynamic_parameters`` made of them), the connection meta, the
greeting, the :class:`Transaction` being built and the counters that bound a client —
and what STARTTLS resets. The replies are :mod:`kumocore.reception.smtp.replies`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING, Any, Protocol

from kumocore.auth_info import parse_peer_ip
from kumocore.conn_meta import ConnMeta
from kumocore.reception.smtp.protocol import SmtpProtocol, format_address
from kumocore.reception.smtp.rejections import RejectionLog
from kumocore.reception.smtp.relay import DomainLookup

if TYPE_CHECKING:
    import ssl

    from kumocore.config import EsmtpListenerConfig
    from kumocore.mail.address import EnvelopeAddress
    from kumocore.node.runtime import Runtime


class ListenerView(Protocol):
    """What the state reads of its listener (the session module's ``Listener`` offers
    more: typed structurally, so that this module needs nothing of the session's)."""

    @property
    def runtime(self) -> Runtime: ...
    @property
    def config(self) -> EsmtpListenerConfig: ...
    @property
    def tls_context(self) -> ssl.SSLContext | None: ...


@dataclass
class Transaction:
    """The envelope being built between MAIL FROM and the end of DATA."""

    sender: EnvelopeAddress
    #: ``perf_counter()`` when MAIL FROM was accepted (``smtpsrv_transaction_duration``).
    started: float = 0.0
    ended: bool = False  # timed already (an answer and a lost connection may both end it)
    recipients: list[EnvelopeAddress] = field(default_factory=list)


class SessionState(SmtpProtocol):
    """The connection state of an ESMTP session; see the module docstring."""

    def __init__(self, listener: ListenerView) -> None:
        self.listener = listener
        self.runtime = listener.runtime
        self.config: EsmtpListenerConfig = listener.config
        self._init_aiosmtpd(
            hostname=self.config.hostname,
            banner=self.config.banner,
            timeout=self.config.client_timeout,
            line_limit=self.config.line_length_hard_limit,
            max_size=self.config.max_message_size,
            tls_context=listener.tls_context,
        )
        self.conn_meta = ConnMeta()
        self.peer_ip = self.peer_address = self.local_ip = self.local_address = ""
        #: The socket's own local address, as accepted: unlike ``local_address``, a PROXY
        #: header or XCLIENT cannot change it, so counting by it stays bounded by the
        #: host's addresses.
        self.accepted_on = ""
        self.domains = DomainLookup(self.runtime.hooks, self.config, "", self.conn_meta)
        self.session_id = ""
        self.ehlo_domain: str | None = None
        self.esmtp = False
        self.authn_id: str | None = None
        self.txn: Transaction | None = None
        self.command = ""  # the command being answered, for Rejection records
        self.rcpt_count = 0  # recipients (= messages) accepted on this connection
        self.errors = 0  # refused commands since the last accepted message
        self.junk_commands = 0  # non-progress commands since the last accepted message
        self.recipient_overshoot = 0
        self.auth_failures = 0
        self.rejections = RejectionLog()
        #: The node's SMTP server counts (kumocore.node.node_metrics); None before the
        #: node's services exist (a listener started on its own, in tests).
        services = self.runtime.services
        self.server_counts = None if services is None else services.metrics.smtp_server
        self._end_text: str | None = None  # set: end the session at the next command
        self._session_timer: asyncio.TimerHandle | None = None
        self._shutting_down = False
        # Known once the policy is loaded: asked per connection, not per reply or DATA.
        self._rewrite = self.runtime.hooks.implemented("smtp_server_rewrite_response")
        self.data_event = self.runtime.hooks.implemented("smtp_server_data")
        self.split_event = self.runtime.hooks.implemented("smtp_server_split_transaction")
        self._dynamic = self.runtime.hooks.implemented("smtp_server_get_dynamic_parameters")

    def set_addresses(self, peer: Any, local: Any) -> None:
        """The client's and our address (from the socket, or from a PROXY header or
        XCLIENT): they choose the ``peer``/``via`` overrides and fill the connection
        meta that relay decisions and log records use."""
        self.peer_ip, self.peer_address = format_address(peer)
        self.local_ip, self.local_address = format_address(local)
        # The session's AuthInfo names the client as the ACL sees it (a PROXY header's).
        self.conn_meta.auth_info = dataclasses.replace(
            self.conn_meta.auth_info, peer_address=parse_peer_ip(self.peer_ip))
        self.conn_meta.update(
            {
                "reception_protocol": "ESMTP",
                "received_via": self.local_address,
                "received_from": self.peer_address,
            }
        )
        # ``peer``/``via`` blocks may override options for this client or local address.
        self.use_config(self.listener.config.for_connection(self.peer_ip, self.local_ip))
        self.conn_meta.update(self.config.meta)

    def use_config(self, config: EsmtpListenerConfig) -> None:
        """Serve the rest of the connection with ``config`` (the listener's parameters
        for this connection, or what ``smtp_server_get_dynamic_parameters`` made of them).
        Only the ``meta`` entries ``config`` changes are copied into the connection meta,
        so what a handler set there itself stays (KumoMTA sets only the new entries)."""
        old_meta = self.config.meta
        self.config = config
        self.hostname = config.hostname
        self._timeout_duration = config.client_timeout
        self.tls_handshake_timeout = config.tls_handshake_timeout
        self.conn_meta["hostname"] = config.hostname
        self.conn_meta.update(
            {k: v for k, v in config.meta.items() if k not in old_meta or old_meta[k] != v}
        )
        self.domains = DomainLookup(self.runtime.hooks, config, self.local_address, self.conn_meta)

    def _tls_started(self, transport: asyncio.BaseTransport) -> None:
        super()._tls_started(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            cipher = ssl_object.cipher()
            if cipher:
                self.conn_meta["tls_cipher"] = cipher[0]
            self.conn_meta["tls_protocol_version"] = ssl_object.version()
        # RFC 3207 4.2: forget everything the client said before the handshake.
        self.ehlo_domain = None
        self.esmtp = False
        self.txn = None
        self.conn_meta.pop("ehlo_domain", None)

    def reset_transaction(self) -> None:
        """Drop the transaction under way (RSET, EHLO, the connection lost)."""
        if self.txn is not None:
            self.end_transaction(self.txn)

    def end_transaction(self, txn: Transaction) -> None:
        """``txn`` is over (answered, reset or abandoned): forget it, and time it once."""
        if self.txn is txn:
            self.txn = None
        if txn.ended:
            return
        txn.ended = True
        if (counts := self.server_counts) is not None:
            counts.transaction.observe(perf_counter() - txn.started)
