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
from kumocore.node.latency import Histogram

log = structlog.get_logger("kumocore.policy.hooks")

_Plan = tuple[tuple[pluggy.HookImpl, tuple[str, ...]], ...]

#: Errors that pass through untouched: they already say who failed and how to answer.
_PASS_THROUGH = (Rejection, PolicyError, HookError)
#: Where kumocore's own hook implementations live (see HookCaller.where_defined).
_CORE_PACKAGE = "kumocore."


def event_name(hook: str) -> str:
    """KumoMTA's name of the event ``hook`` implements (``kumo_get_queue_config`` →
    ``get_queue_config``): how ``/metrics`` labels a hook's calls."""
    return hook.removeprefix("kumo_")


@dataclass
class HookTiming:
    """Cumulative time spent per hook, for diagnostics and ``/metrics``; ``latency``
    holds the calls that ran an implementation (KumoMTA's ``lua_event_latency``, which
    times event callbacks only) and ``started`` counts those calls as they begin
    (KumoMTA's ``lua_event_started``: started minus completed is the calls in flight)."""

    calls: int = 0
    seconds: float = 0.0
    latency: Histogram = field(default_factory=Histogram)
    started: int = 0


@dataclass
class HookCaller:
    """Awaits hook implementations in pluggy's call order."""

    pm: pluggy.PluginManager
    timeout: float | None = 30.0
    timings: dict[str, HookTiming] = field(default_factory=dict)

    #: Per hook: pluggy's implementation list as last seen, and the call plan built from
    #: it. Rebuilt whenever that list changes (a plugin registered or unregistered).
    _plans: dict[str, tuple[list[pluggy.HookImpl], _Plan]] = field(default_factory=dict)

    def _impls(self, name: str) -> list[pluggy.HookImpl]:
        caller = getattr(self.pm.hook, name)
        # get_hookimpls() is in registration order with trylast first and tryfirst
        # last; pluggy calls them in reverse, and so do we.
        return list(reversed(caller.get_hookimpls()))

    def _plan(self, name: str) -> _Plan:
        """``(impl, argnames)`` in call order, cached: every message calls several hooks,
        and copying and reversing pluggy's list each time was most of a call's cost."""
        caller = getattr(self.pm.hook, name)
        current = getattr(caller, "_hookimpls", None)  # pluggy's own list, changed in place
        cached = self._plans.get(name)
        if cached is not None and current is not None and cached[0] == current:
            return cached[1]
        impls = caller.get_hookimpls()  # a copy: a later change of `current` is noticed
        plan = tuple((impl, tuple(impl.argnames)) for impl in reversed(impls))
        self._plans[name] = (impls, plan)
        return plan

    def _plugin_name(self, impl: pluggy.HookImpl) -> str:
        return impl.plugin_name or repr(impl.plugin)

    def _failure(self, impl: pluggy.HookImpl, name: str, exc: Exception) -> HookError:
        """The HookError for ``exc`` raised by ``impl`` (logged here)."""
        if isinstance(exc, TimeoutError):
            error = HookError(
                self._plugin_name(impl),
                name,
                TimeoutError(f"did not answer within {self.timeout} s"),
            )
            log.error("hook timed out", plugin=error.plugin, hook=name)
            return error
        error = HookError(self._plugin_name(impl), name, exc)
        log.error("hook failed", plugin=error.plugin, hook=name, error=str(exc))
        return error

    def _call(self, impl: pluggy.HookImpl, argnames: tuple[str, ...], name: str,
              kwargs: dict[str, Any]) -> Any:
        """Call ``impl``; an awaitable result is returned as is, for :meth:`_settle`."""
        args = [kwargs[arg] for arg in argnames]
        try:
            return impl.function(*args)
        except _PASS_THROUGH:
            raise
        except Exception as exc:
            raise self._failure(impl, name, exc) from exc

    async def _settle(self, impl: pluggy.HookImpl, name: str, result: Any) -> Any:
        """Await an async implementation's result, under the per-hook timeout."""
        try:
            if self.timeout is None:
                return await result
            async with asyncio.timeout(self.timeout):
                return await result
        except _PASS_THROUGH:
            raise
        except Exception as exc:
            raise self._failure(impl, name, exc) from exc

    def _new_timing(self, name: str) -> HookTiming:
        timing = self.timings[name] = HookTiming()
        return timing

    @staticmethod
    def _timing(timing: HookTiming, started: float, handled: bool) -> None:
        elapsed = time.perf_counter() - started
        timing.calls += 1
        timing.seconds += elapsed
        if handled:
            timing.latency.observe(elapsed)

    async def call_all(self, name: str, **kwargs: Any) -> list[Any]:
        """Run every implementation in order; return their non-None results."""
        started = time.perf_counter()
        results = []
        plan = self._plan(name)
        # A call that runs an implementation counts as started here (lua_event_started)
        # and as completed in _timing; inline, as in call_first: messages call many hooks.
        timing = self.timings.get(name) or self._new_timing(name)
        if plan:
            timing.started += 1
        try:
            for impl, argnames in plan:
                # Inlined _invoke: a synchronous implementation (the usual case) costs
                # no coroutine of its own.
                result = self._call(impl, argnames, name, kwargs)
                if result is not None and inspect.isawaitable(result):
                    result = await self._settle(impl, name, result)
                if result is not None:
                    results.append(result)
        finally:
            self._timing(timing, started, bool(plan))
        return results

    async def call_first(self, name: str, **kwargs: Any) -> Any:
        """Run implementations in order until one returns non-None; return it."""
        started = time.perf_counter()
        plan = self._plan(name)
        timing = self.timings.get(name) or self._new_timing(name)
        if plan:
            timing.started += 1
        try:
            for impl, argnames in plan:
                result = self._call(impl, argnames, name, kwargs)
                if result is not None and inspect.isawaitable(result):
                    result = await self._settle(impl, name, result)
                if result is not None:
                    return result
            return None
        finally:
            self._timing(timing, started, bool(plan))

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

    def where_defined(self, name: str) -> list[str]:
        """``file:line`` of each implementation of hook ``name``, in call order.

        A plugin that runs handlers of its own (a Lua policy's ``kumo.on``) says where they
        are through an optional ``where_defined(event)`` method; any other implementation
        is the Python function itself. kumocore's own defaults are left out: they are not
        where a policy's mistake is. For error messages only (not on a hot path).
        """
        event = name.removeprefix("kumo_")
        places: list[str] = []
        for impl in self._impls(name):
            if (getattr(impl.function, "__module__", None) or "").startswith(_CORE_PACKAGE):
                continue
            locate = getattr(impl.plugin, "where_defined", None)
            code = getattr(impl.function, "__code__", None)
            if callable(locate):
                places += locate(event)
            elif code is not None:
                places.append(f"{code.co_filename}:{code.co_firstlineno}")
        return places

    def implementers(self, name: str) -> Iterator[str]:
        """Plugin names implementing ``name``, in call order."""
        return (self._plugin_name(impl) for impl in self._impls(name))

    def has_implementations(self, name: str) -> bool:
        return bool(self._impls(name))
