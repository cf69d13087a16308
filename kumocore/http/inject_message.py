"""One message of an injection request: its bytes, meta and trace headers.

What :class:`kumocore.http.inject.InjectHandler` makes for each recipient, before the
``http_message_generated`` event (:func:`generated_message`) and after it
(:func:`add_trace_headers`): KumoMTA's meta for HTTP injection (``http_auth``,
``auth_info``, ``reception_protocol``, ``received_from``, and with a listener
``received_via`` and ``hostname``; the recipient's ``metadata`` as ``extra``) and its
``Received:`` and supplemental trace headers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kumocore.http.builder import build_message, with_message_id
from kumocore.mail.message import Message
from kumocore.reception.trace import add_supplemental_header, rfc2822_now

if TYPE_CHECKING:
    from kumocore.config import HttpListenerConfig
    from kumocore.http.auth import AuthInfo
    from kumocore.http.inject_schema import InjectRecipient, InjectRequest
    from kumocore.http.templating import Templates

__all__ = ["add_trace_headers", "generated_message"]


def generated_message(
    inject: InjectRequest, templates: Templates, recipient: InjectRecipient, auth: AuthInfo,
    via: str | None, config: HttpListenerConfig,
) -> Message:
    """``recipient``'s message, rendered from the request's templates."""
    data = build_message(inject, templates, recipient)
    if config.generate_message_id:
        data = with_message_id(data, config.hostname)
    meta: dict[str, Any] = {
        "http_auth": auth.summary,
        "auth_info": auth.to_dict(),
        "reception_protocol": "HTTP",
        "received_from": auth.peer_address,
    }
    if via is not None:  # None: kumo.api.inject.inject_v1, no listener involved
        meta["received_via"] = via
        meta["hostname"] = config.hostname
    if recipient.metadata is not None:
        meta["extra"] = recipient.metadata
    return Message(inject.envelope_sender, recipient.address, data, meta=meta)


def add_trace_headers(
    inject: InjectRequest, message: Message, auth: AuthInfo, hostname: str
) -> None:
    """The request's ``trace_headers``: ``Received:`` and the supplemental header."""
    trace = inject.trace_headers
    if trace.received_header:
        message.prepend_header("Received", (
            f"from {auth.peer_address} by {hostname} with HTTP "
            f"id {message.id} for <{message.recipient.email}>; {rfc2822_now()}"))
    if trace.supplemental_header:
        add_supplemental_header(message, trace.header_name, trace.include_meta_names)
