"""The message events of the hook facade (:class:`kumocore.policy.hooks.Hooks`) outside
the SMTP session: injection over HTTP and transfer, the spool, the queues, delivery, logs
and bounces.
"""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING, Any

from kumocore.errors import PolicyError

if TYPE_CHECKING:
    from kumocore.mail.message import Message
    from kumocore.mail.response import Response
    from kumocore.node.latency import Histogram
    from kumocore.policy.hookcall import HookCaller


class MessageHooks:
    """Awaitable, typed calls of the message events (part of :class:`Hooks`)."""

    caller: HookCaller
    #: KumoMTA's ``bounce_classify_latency`` (set by :class:`kumocore.policy.hooks.Hooks`).
    bounce_classify_latency: Histogram

    # ---------------------------------------------------------------- HTTP events
    async def http_message_generated(self, message: Message, auth_info: dict[str, Any]) -> None:
        await self.caller.call_all(
            "kumo_http_message_generated", message=message, auth_info=auth_info
        )

    async def xfer_message_received(self, message: Message, auth_info: dict[str, Any]) -> None:
        await self.caller.call_all(
            "kumo_xfer_message_received", message=message, auth_info=auth_info
        )

    # ---------------------------------------------------------------- queues & delivery
    async def spool_message_enumerated(self, message: Message) -> None:
        await self.caller.call_all("kumo_spool_message_enumerated", message=message)

    async def throttle_insert_ready_queue(self, message: Message) -> None:
        await self.caller.call_first("kumo_throttle_insert_ready_queue", message=message)

    async def requeue_message(
        self,
        message: Message,
        smtp_response: str,
        insert_context: list[str],
        increment_attempts: bool,
        delay: float | None,
    ) -> None:
        await self.caller.call_first(
            "kumo_requeue_message",
            message=message,
            smtp_response=smtp_response,
            insert_context=insert_context,
            increment_attempts=increment_attempts,
            delay=delay,
        )

    async def rebind_message(self, message: Message, data: dict[str, str]) -> None:
        await self.caller.call_all("kumo_rebind_message", message=message, data=data)

    async def smtp_client_rewrite_delivery_status(
        self,
        response: str,
        domain: str,
        tenant: str | None,
        campaign: str | None,
        routing_domain: str | None,
    ) -> int | None:
        """The status code a policy wants ``response`` handled as, or None."""
        result = await self.caller.call_first(
            "kumo_smtp_client_rewrite_delivery_status",
            response=response,
            domain=domain,
            tenant=tenant,
            campaign=campaign,
            routing_domain=routing_domain,
        )
        if result is None:
            return None
        if (
            isinstance(result, bool)
            or not isinstance(result, int | float)
            or int(result) != result
            or not 200 <= int(result) <= 599
        ):
            raise PolicyError(
                "smtp_client_rewrite_delivery_status must return an SMTP status code "
                f"(200-599) or nil, got {result!r:.40}"
            )
        return int(result)

    # ---------------------------------------------------------------- logs & bounces
    async def classify_bounce(self, response: Response) -> str:
        """The bounce class of ``response``. Timed only when a classifier answered: as in
        KumoMTA, a node that configured none has no classification to time."""
        started = perf_counter()
        result = await self.caller.call_first("kumo_classify_bounce", response=response)
        if result is None:
            return "Uncategorized"
        self.bounce_classify_latency.observe(perf_counter() - started)
        return str(result)

    async def log_disposition(
        self, hook_name: str, message: Message, log_record: dict[str, Any]
    ) -> None:
        await self.caller.call_all(
            "kumo_log_disposition", hook_name=hook_name, message=message, log_record=log_record
        )

    async def should_enqueue_log_record(self, message: Message, hook_name: str) -> bool:
        result = await self.caller.call_first(
            "kumo_should_enqueue_log_record", message=message, hook_name=hook_name
        )
        return bool(result)
