"""Background work and process-level knobs for policies.

``kumo.spawn_task { event_name = 'my.task', args = {...} }`` runs the policy's handler for
``event_name`` as an asyncio task (KumoMTA runs it on a thread of its own; here it shares
the event loop, so a handler doing blocking work stalls the server — use ``kumo.sleep``,
not a busy loop). ``kumo.sleep(seconds)`` suspends only the calling handler.
``kumo.available_parallelism()`` and ``kumo.set_diagnostic_log_filter('kumod=debug')``
round out the group.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from kumocore.errors import ConfigError
from kumocore.policy.plugins import POLICY_PLUGIN_NAME
from kumocore.policy.policyfn import policy_function, string_argument

if TYPE_CHECKING:
    from kumocore.policy.policy_host import PolicyHost

log = structlog.get_logger("kumocore.policy.tasks")

#: tracing-subscriber's levels → Python's (``off`` silences the diagnostic log).
_LEVELS = {
    "trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO,
    "warn": logging.WARNING, "warning": logging.WARNING, "error": logging.ERROR,
    "off": logging.CRITICAL + 10,
}
#: Filter targets that mean "the server itself" (KumoMTA's crate name, and ours).
_SERVER_TARGETS = ("", "kumod", "kumocore")


class TaskRunner:
    """Spawns policy tasks and keeps them referenced until they finish."""

    def __init__(self, runtime: PolicyHost) -> None:
        self.runtime = runtime
        self.tasks: set[asyncio.Task[Any]] = set()

    def _handler(self, event_name: str) -> Callable[[Any], Any]:
        policy = self.runtime.pm.get_plugin(POLICY_PLUGIN_NAME)
        call_event = getattr(policy, "call_event", None)
        registry = getattr(policy, "registry", None)
        if call_event is not None and registry is not None:  # Lua: kumo.on(event_name, fn)
            if not registry.handlers(event_name):
                raise ConfigError(
                    f"kumo.spawn_task: no handler registered for event {event_name!r}; "
                    f"register one with kumo.on('{event_name}', function(args) ... end)")
            return lambda args: call_event(event_name, args)
        # A Python policy: a module-level function named after the event, dots as '_'.
        fn = getattr(policy, event_name.replace(".", "_"), None)
        if not callable(fn):
            raise ConfigError(
                f"kumo.spawn_task: the policy has no function {event_name.replace('.', '_')!r} "
                f"for event {event_name!r}")
        return fn  # type: ignore[no-any-return]

    def spawn(self, event_name: Any, args: Any = None) -> None:
        string_argument("kumo.spawn_task", "event_name", event_name, empty=False)
        handler = self._handler(event_name)
        task = asyncio.get_running_loop().create_task(
            self._run(event_name, handler, args), name=f"kumo.spawn_task:{event_name}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, event_name: str, handler: Callable[[Any], Any], args: Any) -> None:
        try:
            result = handler(args)
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # As in KumoMTA: the error is logged and the task stops.
            log.error("spawned task failed", task_event=event_name, error=str(exc))


#: Unknown filter directives named in the warning; the rest are counted.
_SHOWN_IGNORED = 10


def set_diagnostic_log_filter(filter: Any) -> None:
    """Apply the level a tracing-style filter (``'kumod=debug,other=warn'``) gives the server.

    Directives for other targets (Rust crates of KumoMTA) have no counterpart here; they are
    reported once, not silently dropped.
    """
    if not isinstance(filter, str) or not filter.strip():
        raise ConfigError(
            f"kumo.set_diagnostic_log_filter: expected a filter string, got {filter!r}")
    level: int | None = None
    ignored: list[str] = []
    for directive in (part.strip() for part in filter.split(",")):
        if not directive:
            continue
        target, _, name = directive.rpartition("=")
        numeric = _LEVELS.get(name.lower())
        if numeric is None:
            raise ConfigError(f"kumo.set_diagnostic_log_filter: unknown level in {directive!r}")
        if target in _SERVER_TARGETS:
            level = numeric
        else:
            ignored.append(directive)
    if ignored:  # the first few: a filter may hold thousands (a 2 MiB request body)
        log.warning("diagnostic filter directives without a kumocore counterpart",
                    directives=ignored[:_SHOWN_IGNORED], count=len(ignored))
    if level is not None:
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(level))
        logging.getLogger().setLevel(level)


def make_task_functions(runtime: PolicyHost) -> dict[str, Callable[..., Any]]:
    """``spawn_task``, ``sleep``, ``available_parallelism``, ``set_diagnostic_log_filter``."""
    runner = TaskRunner(runtime)

    @policy_function(table=True)
    def spawn_task(event_name: Any = None, args: Any = None) -> None:
        """``kumo.spawn_task { event_name = 'my.task', args = {...} }``."""
        runner.spawn(event_name, args)

    @policy_function(table=False)
    async def sleep(seconds: Any) -> None:
        """``kumo.sleep(seconds)``: suspend the calling handler (fractions allowed)."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ConfigError(f"kumo.sleep: expected a number of seconds >= 0, got {seconds!r}")
        await asyncio.sleep(float(seconds))

    @policy_function(table=False)
    def available_parallelism() -> int:
        """CPUs this process may run on (its affinity mask, as Rust's estimate uses)."""
        try:
            return len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # pragma: no cover - not Linux
            return os.cpu_count() or 1

    return {
        "spawn_task": spawn_task,
        "sleep": sleep,
        "available_parallelism": available_parallelism,
        "set_diagnostic_log_filter": set_diagnostic_log_filter,
    }
