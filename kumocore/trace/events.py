"""The events that need more than a line at their publishing site: the listener's
message disposition, and the delivery client's tracer (KumoMTA's
``SmtpClientTracerImpl``). The listener's policy ``Callback`` events are in
:mod:`kumocore.trace.callbacks`.

A :class:`ClientTracer` belongs to one delivery session: all the connections a
dispatcher opens, under its ``session_id`` as ``id`` (KumoMTA's tracer is made once per
dispatcher). Its meta starts with what is known before connecting (``egress_pool``,
``egress_source``, ``id``, ``ready_queue_name``, ``mx_plan``), gains
``source_address``/``mx_host``/``mx_address`` when a host answers and the message's
``message_id``/``sender``/``recipient``/``domain``/``routing_domain``/``campaign``/
``tenant``/``queue_name`` with each message, as KumoMTA's does. Callers test
``CLIENT_TRACE.active`` before calling it.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from kumocore.mail.address import recipient_json
from kumocore.mail.queue_name import parse_queue_name
from kumocore.trace.bus import CLIENT_TRACE, SERVER_TRACE

if TYPE_CHECKING:
    from kumocore.mail.message import Message
    from kumocore.reception.smtp.relay import RelayDisposition


def trace_disposition(
    conn_meta: dict[str, Any],
    message: Message,
    disposition: RelayDisposition,
    *,
    keep: bool,
    report: bool,
) -> None:
    """KumoMTA's ``MessageDisposition``: what the listener decided for one message."""
    queue = message.queue_name()
    SERVER_TRACE.publish(
        conn_meta,
        "MessageDisposition",
        {
            "relay": disposition.relay,
            "log_arf": disposition.log_arf,
            "log_oob": disposition.log_oob,
            "queue": queue,
            "meta": dict(message.meta),
            "sender": str(message.sender),
            "recipient": recipient_json(message.recipients),
            "id": message.id,
            "was_arf_or_oob": report,
            "will_enqueue": keep and queue != "null",
        },
    )


class ClientTracer:
    """The trace meta of one delivery session, and its events."""

    __slots__ = ("closed", "meta")

    def __init__(self, meta: dict[str, Any] | None = None) -> None:
        self.meta: dict[str, Any] = {"id": str(uuid.uuid4()), **(meta or {})}
        self.closed = False

    def begin(self) -> None:
        CLIENT_TRACE.publish(self.meta, "BeginSession")

    def connected(self, mx_host: str, address: str, source_address: str | None) -> None:
        if source_address is not None:
            self.meta["source_address"] = source_address
        self.meta["mx_host"] = mx_host
        self.meta["mx_address"] = address
        self.closed = False
        CLIENT_TRACE.publish(self.meta, "Connected")

    def message(self, message: Message) -> None:
        """The session took ``message`` (KumoMTA's ``MessageObtained``)."""
        meta = self.meta
        meta["message_id"] = message.id
        meta["sender"] = str(message.sender)
        meta["recipient"] = [str(r) for r in message.recipients]
        name = message.queue_name()
        parts = parse_queue_name(name)
        meta["domain"] = parts.domain
        meta["routing_domain"] = parts.routing_domain
        for key in ("campaign", "tenant"):
            value = getattr(parts, key)
            if value is None:
                meta.pop(key, None)
            else:
                meta[key] = value
        meta["queue_name"] = name
        CLIENT_TRACE.publish(meta, "MessageObtained")

    def read(self, line: bytes) -> None:
        CLIENT_TRACE.publish(self.meta, "Read", line)

    def write(self, data: bytes | str) -> None:
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        CLIENT_TRACE.publish(self.meta, "Write", text)

    def diagnostic(self, level: str, message: str) -> None:
        CLIENT_TRACE.diagnostic(self.meta, level, message)

    def close(self) -> None:
        """The connection is gone (said once per connection)."""
        if not self.closed:
            self.closed = True
            CLIENT_TRACE.publish(self.meta, "Closed")
