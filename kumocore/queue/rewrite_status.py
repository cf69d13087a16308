"""``smtp_client_rewrite_delivery_status``: the policy may change how a refusal counts.

A destination's non-2xx answer is offered to the policy on one line, with the message's
queue name parts. If it answers another status code, the response is handled as that code
(a 450 rewritten to 500 bounces instead of being retried), and its text says so, as
KumoMTA's does: ``(kumomta: status was rewritten from 450 -> 500)``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import structlog

from kumocore.mail.queue_name import parse_queue_name

if TYPE_CHECKING:
    from kumocore.mail.message import Message
    from kumocore.mail.response import Response
    from kumocore.policy.hooks import Hooks

log = structlog.get_logger("kumocore.delivery")


async def rewrite_delivery_status(
    hooks: Hooks, queue_name: str, message: Message, response: Response
) -> Response:
    """``response``, or the rewritten one when the policy answered another code.

    ``queue_name`` is the scheduled queue the message is in (its parts are the event's
    domain, tenant, campaign and routing_domain arguments)."""
    if response.is_success or not hooks.implemented("smtp_client_rewrite_delivery_status"):
        return response
    parts = parse_queue_name(queue_name)
    try:
        code = await hooks.smtp_client_rewrite_delivery_status(
            response.to_single_line(), parts.domain, parts.tenant, parts.campaign,
            parts.routing_domain)
    except Exception as exc:
        # The delivery outcome must still be recorded: keep the destination's answer.
        log.error("smtp_client_rewrite_delivery_status failed", id=message.id, error=str(exc))
        return response
    if code is None or code == response.code:
        return response
    note = f"(kumomta: status was rewritten from {response.code} -> {code})"
    return replace(response, code=code, content=f"{response.content} {note}".strip())
