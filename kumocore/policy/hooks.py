"""The typed facade over the hook contract: the rest of kumocore calls hooks through here.

Each method mirrors one hook in :mod:`kumocore.hookspecs` and says how it is called
(all / first non-None). The facade never calls pluggy itself; :mod:`kumocore.policy.hookcall` does.
:class:`Hooks` holds the lifecycle events and the providers; its other methods come from
:mod:`~kumocore.policy.hooks_smtp` (SMTP server events), :mod:`~kumocore.policy.hooks_lookup`
(lookups) and :mod:`~kumocore.policy.hooks_message` (message events).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy
import structlog

from kumocore.errors import ConfigError
from kumocore.hookspecs import PolicyLoader
from kumocore.node.latency import Histogram
from kumocore.policy.hookcall import HookCaller
from kumocore.policy.hooks_lookup import UNSPECIFIED as UNSPECIFIED
from kumocore.policy.hooks_lookup import LookupHooks
from kumocore.policy.hooks_message import MessageHooks
from kumocore.policy.hooks_smtp import SmtpServerHooks

#: Seconds the ``shutdown_logging`` event may take: the node's stop goes on without it
#: then (KumoMTA sets no bound, but a stop that never ends loses the spool's last writes).
SHUTDOWN_LOGGING_TIMEOUT = 2.0

log = structlog.get_logger("kumocore.policy.hooks")

if TYPE_CHECKING:
    from kumocore.logs.sink import LogSink
    from kumocore.policy.kumo_api import Kumo
    from kumocore.spool.base import SpoolFactory
    from kumocore.throttle.store import ThrottleStore


class Hooks(SmtpServerHooks, LookupHooks, MessageHooks):
    """Awaitable, typed calls of every kumocore hook."""

    def __init__(self, pm: pluggy.PluginManager, *, timeout: float | None = 30.0) -> None:
        self.pm = pm
        self.caller = HookCaller(pm, timeout=timeout)
        self.bounce_classify_latency = Histogram()

    # ---------------------------------------------------------------- lifecycle
    async def init(self, kumo: Kumo) -> None:
        await self.caller.call_all("kumo_init", kumo=kumo)

    # pre_init, validate_config, throttle_insert_ready_queue and requeue_message are
    # KumoMTA's ``Multiple`` events: implementations run until one returns a value
    # (hookspecs.UNTIL_A_VALUE), hence call_first although the answer is not used.
    async def pre_init(self, kumo: Kumo) -> None:
        await self.caller.call_first("kumo_pre_init", kumo=kumo)

    async def validate_config(self) -> None:
        await self.caller.call_first("kumo_validate_config")

    async def shutdown(self) -> None:
        await self.caller.call_all("kumo_shutdown")

    async def shutdown_logging(self, timeout: float = SHUTDOWN_LOGGING_TIMEOUT) -> None:
        """KumoMTA's ``shutdown_logging``, bounded by ``timeout``; never raises: the stop
        goes on whatever the handlers do (KumoMTA ignores their errors too)."""
        if not self.implemented("shutdown_logging"):
            return
        try:
            async with asyncio.timeout(timeout):
                await self.caller.call_all("kumo_shutdown_logging")
        except TimeoutError:
            log.error(
                "shutdown_logging did not finish in time; stopping without it", timeout=timeout
            )
        except Exception as exc:  # already logged by the caller, with the plugin's name
            log.error("shutdown_logging failed; stopping anyway", error=str(exc))

    # ---------------------------------------------------------------- providers
    def policy_functions(self) -> dict[str, tuple[str, Callable[..., Any]]]:
        """All contributed ``kumo.*`` functions: name → (plugin, function)."""
        merged: dict[str, tuple[str, Callable[..., Any]]] = {}
        for plugin, functions in self.caller.call_all_sync("kumo_register_policy_functions"):
            for name, fn in functions.items():
                if name in merged:
                    raise ConfigError(
                        f"kumo.{name} is contributed by both {merged[name][0]!r} and {plugin!r}"
                    )
                merged[name] = (plugin, fn)
        return merged

    def policy_loaders(self) -> dict[str, PolicyLoader]:
        return _merge_maps(self.caller.call_all_sync("kumo_register_policy_loaders"))

    def spool_kinds(self) -> dict[str, SpoolFactory]:
        return _merge_maps(self.caller.call_all_sync("kumo_register_spool_kinds"))

    def log_sinks(self) -> list[LogSink]:
        return [
            s for _, sinks in self.caller.call_all_sync("kumo_register_log_sinks") for s in sinks
        ]

    def throttle_stores(self) -> list[ThrottleStore]:
        return [
            s
            for _, stores in self.caller.call_all_sync("kumo_register_throttle_stores")
            for s in stores
        ]

    def config_epoch(self) -> int:
        """The configuration epoch: the sum of every provider's reader (0 without any)."""
        return sum(
            int(read()) for _, read in self.caller.call_all_sync("kumo_register_config_epoch")
        )

    def bump_config_epoch(self) -> int:
        """Bump every provider's configuration epoch; returns how many providers there
        were (0: nothing to bump)."""
        bumps = self.caller.call_all_sync("kumo_register_config_epoch_bump")
        for _, bump in bumps:
            bump()
        return len(bumps)

    def implemented(self, event: str) -> bool:
        """Whether any plugin or policy handles ``event`` (``"smtp_server_data"``): lets a
        caller skip preparing arguments nobody will read."""
        return self.caller.has_implementations(f"kumo_{event}")


def _merge_maps(results: list[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Merge provider maps; the first provider (in call order) of a name wins."""
    merged: dict[str, Any] = {}
    for _, mapping in results:
        for key, value in mapping.items():
            merged.setdefault(key, value)
    return merged
