"""kumocore-webhook-sink: an example third-party kumocore plugin.

It contributes ``kumo.configure_webhook_sink { url = ..., batch_size = 100, meta = {...} }``
and returns the configured sinks from ``kumo_register_log_sinks``; kumocore's log
dispatcher then feeds them every log record in batches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kumocore import hookimpl, policy_function
from kumocore_webhook_sink.sink import WebhookSink, webhook_options

__all__ = ["WebhookSink", "WebhookSinkPlugin"]


class WebhookSinkPlugin:
    """Instantiated once per plugin manager, so configured sinks never leak between them."""

    def __init__(self) -> None:
        self.sinks: list[WebhookSink] = []

    @hookimpl
    def kumo_register_policy_functions(self) -> Mapping[str, Callable[..., Any]]:
        @policy_function(table=True)
        def configure_webhook_sink(**options: Any) -> None:
            self.sinks.append(WebhookSink(**webhook_options(options)))

        return {"configure_webhook_sink": configure_webhook_sink}

    @hookimpl
    def kumo_register_log_sinks(self) -> list[WebhookSink]:
        return list(self.sinks)

    @hookimpl
    async def kumo_shutdown(self) -> None:
        for sink in self.sinks:
            await sink.close()
