"""The disposition hooks' handlers over a loaded policy and a started node.

:class:`PolicyDispositions` is what a :class:`~kumocore.loghooks.disposition.DispositionHookSink`
calls: the policy's Lua event ``log_disposition_<name>`` (a custom event) and every Python
``kumo_log_disposition`` hook, with the message still owned by the queues.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kumocore.policy.custom_events import custom_event_source

if TYPE_CHECKING:
    from kumocore.policy.policy_host import PolicyHost


class PolicyDispositions:
    """The handlers of disposition hooks over the runtime
    (:class:`kumocore.loghooks.disposition.DispositionHandlers`): the policy's Lua event
    ``log_disposition_<name>`` and every Python ``kumo_log_disposition``."""

    def __init__(self, runtime: PolicyHost) -> None:
        self.runtime = runtime

    def has_handler(self, event: str) -> bool:
        return custom_event_source(self.runtime.pm, event) is not None \
            or self.runtime.hooks.implemented("log_disposition")

    def message(self, message_id: str) -> Any | None:
        services = self.runtime.services
        return None if services is None else services.queues.messages.get(message_id)

    async def call(self, hook_name: str, event: str, message: Any,
                   log_record: dict[str, Any]) -> None:
        source = custom_event_source(self.runtime.pm, event)
        if source is not None:
            await source.call_custom_event(event, message, log_record)
        await self.runtime.hooks.log_disposition(hook_name, message, log_record)
