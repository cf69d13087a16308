"""Custom events: constructors a policy registers under a name of its own choosing.

KumoMTA lets a policy register any event name (``kumo.on('make.webhook', fn)``) and other
features call it by name: ``configure_log_hook { name = 'webhook' }`` calls
``make.webhook``, a ``custom_lua`` delivery protocol its ``constructor``. In kumocore the
operator's policy plugin offers such handlers through :class:`CustomEventSource` (the Lua
policy does); features look them up with :func:`custom_event_source`::

    source = custom_event_source(pm, "make.webhook")
    if source is None:
        raise ConfigError("configure_log_hook: the policy registers no 'make.webhook'")
    constructor = await source.call_custom_event("make.webhook", domain, tenant, campaign)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from kumocore.policy.plugins import POLICY_PLUGIN_NAME

if TYPE_CHECKING:
    import pluggy


@runtime_checkable
class CustomEventSource(Protocol):
    """A policy plugin that can run handlers of custom events."""

    @property
    def custom_events(self) -> list[str]:
        """The custom event names with a handler."""
        ...

    def has_custom_event(self, name: str) -> bool: ...

    async def call_custom_event(self, name: str, *args: Any) -> Any:
        """Run the handler of ``name`` with Python arguments; its result, in Python."""
        ...


def custom_event_source(pm: pluggy.PluginManager, name: str) -> CustomEventSource | None:
    """The loaded policy, when it registered a handler for the custom event ``name``."""
    policy = pm.get_plugin(POLICY_PLUGIN_NAME)
    if isinstance(policy, CustomEventSource) and policy.has_custom_event(name):
        return policy
    return None
