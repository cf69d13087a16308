"""The ESMTP listener: reception over SMTP, on aiosmtpd, with KumoMTA's behaviour.

``start_esmtp_listener(runtime, config)`` is what :mod:`kumocore.node.server` calls for each
``kumo.start_esmtp_listener{...}`` of the policy. See docs/reception.md.

Owns reception over SMTP: the session, its commands, DATA, relay and AUTH checks, the PROXY
protocol and the rejection replies. It does not own making the message durable and queued
(:mod:`kumocore.reception.intake`) nor outbound SMTP (:mod:`kumocore.delivery.client`).
"""

from __future__ import annotations

from kumocore.reception.smtp.server import EsmtpListener, start_esmtp_listener

__all__ = ["EsmtpListener", "start_esmtp_listener"]
