"""The one place that calls pluggy hooks.

pluggy is synchronous: calling ``pm.hook.x(...)`` on an ``async def`` implementation
returns an un-awaited coroutine. This module walks pluggy's ordered implementations
itself, awaits coroutine results, stops at the first non-None result for lookups, applies a
per-hook timeout and attributes failures to the plugin that raised them. It is also the only
place that knows about hook timing.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pluggy
import structlog

from kumocore.errors import HookError, PolicyError, Rejection

log = structlog.get_logger("kumocore.hooks")

#: Errors that pass through untouched: they already say who failed and how to answer.
_PASS_THROUGH = (Rejection, PolicyError, HookError)


@dataclass
class HookTiming:
    """Cumulative time spent per hook, for diagnostics and ``/metrics``."""

    calls: int = 0
    seconds: float = 0.0


@dataclass
class HookCaller:
    """Awaits hook implementations in pluggy's call order."""

    pm: pluggy.PluginManager
    timeout: float | None = 30.0
    timings: dict[str, HookTiming] = field(default_factory=dict)

    def _impls(self, name: str) -> list[pluggy.HookImpl]:
        caller = getattr(self.pm.hook, name)
        # get_hookimpls() is in registration order with trylast first and tryfirst
        # last; pluggy calls them in reverse, and so do we.
        return list(reversed(caller.get_hookimpls()))

    def _plugin_name(self, impl: pluggy.HookImpl) -> str:
        return impl.plugin_name or repr(impl.plugin)

    async def _invoke(self, impl: pluggy.HookImpl, name: str, kwargs: dict[str, Any]) -> Any:
        args = [kwargs[arg] for arg in impl.argnames]
        try:
            result = impl.function(*args)
            if inspect.isawaitable(result):
                if self.timeout is None:
                    result = await result
                else:
                    async with asyncio.timeout(self.timeout):
                        result = await result
            return result
        except _PASS_THROUGH:
            raise
        except TimeoutError as exc:
            error = HookError(
                self._plugin_name(impl),
                name,
                TimeoutError(f"did not answer within {self.timeout} s"),
            )
            log.error("hook timed out", plugin=error.plugin, hook=name)
            raise error from exc
        except Exception as exc:
            error = HookError(self._plugin_name(impl), name, exc)
            log.error("hook failed", plugin=error.plugin, hook=name, error=str(exc))
            raise error from exc

    def _timing(self, name: str, started: float) -> None:
        timing = self.timings.setdefault(name, HookTiming())
        timing.calls += 1
        timing.seconds += time.perf_counter() - started

    async def call_all(self, name: str, **kwargs: Any) -> list[Any]:
        """Run every implementation in order; return their non-None results."""
        started = time.perf_counter()
        results = []
        try:
            for impl in self._impls(name):
                result = await self._invoke(impl, name, kwargs)
                if result is not None:
                    results.append(result)
        finally:
            self._timing(name, started)
        return results

    async def call_first(self, name: str, **kwargs: Any) -> Any:
        """Run implementations in order until one returns non-None; return it."""
        started = time.perf_counter()
        try:
            for impl in self._impls(name):
                result = await self._invoke(impl, name, kwargs)
                if result is not None:
                    return result
            return None
        finally:
            self._timing(name, started)

    def call_all_sync(self, name: str, **kwargs: Any) -> list[Any]:
        """Run a provider hook whose implementations must be synchronous.

        Used at start-up for providers (``kumo_register_*``); an async implementation
        there is a plugin bug and is reported as one.
        """
        results = []
        for impl in self._impls(name):
            args = [kwargs[arg] for arg in impl.argnames]
            try:
                result = impl.function(*args)
            except _PASS_THROUGH:
                raise
            except Exception as exc:
                raise HookError(self._plugin_name(impl), name, exc) from exc
            if inspect.isawaitable(result):
                close = getattr(result, "close", None)
                if close:
                    close()
                raise HookError(
                    self._plugin_name(impl), name, TypeError("provider hooks must be synchronous")
                )
            if result is not None:
                results.append((self._plugin_name(impl), result))
        return results

    def implementers(self, name: str) -> Iterator[str]:
        """Plugin names implementing ``name``, in call order."""
        return (self._plugin_name(impl) for impl in self._impls(name))

    def has_implementations(self, name: str) -> bool:
        return bool(self._impls(name))
