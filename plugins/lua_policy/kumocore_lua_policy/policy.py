"""Loading a ``.lua`` policy, and the loaded policy as a pluggy plugin.

The file is evaluated in a fresh runtime (:mod:`kumocore_lua_policy.policy_runtime`, where
the ``kumo`` table is built); the loaded policy has one async ``@hookimpl`` per registered
event.

Only events the policy registered get an implementation, so an event the policy ignores
costs nothing (the hook caller never even enters Lua for it). Each implementation converts
its arguments for Lua, runs the handler(s) as coroutines through the engine, and converts
the result back:

* ``init`` handlers get no arguments (KumoMTA's ``init()``);
* a ``Message`` becomes a message proxy (``msg:set_meta(...)``), a ``dict`` such as
  ``conn_meta`` a live map proxy, anything else goes through :class:`Converter`;
* for lookups, a plain table where a ``kumo.make_*`` object is expected is passed through
  that function, as KumoMTA accepts either; events that are not lookups return nothing.
"""

from __future__ import annotations

import asyncio
import keyword
import os
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import structlog

from kumocore import hookimpl
from kumocore_lua_policy.engine import LuaEngine
from kumocore_lua_policy.errors import LuaPolicyError
from kumocore_lua_policy.events import EventRegistry, EventSpec
from kumocore_lua_policy.policy_runtime import _evaluate
from kumocore_lua_policy.stdlib import LuaStdlib
from kumocore_lua_policy.stdlib.time_delta import TimeDelta

log = structlog.get_logger("kumocore.lua")

#: Lookup event → the ``kumo.*`` constructor a plain returned table is passed through.
RESULT_MAKERS = {
    "get_queue_config": "make_queue_config",
    "get_egress_path_config": "make_egress_path",
    "get_egress_pool": "make_egress_pool",
    "get_egress_source": "make_egress_source",
    "get_listener_domain": "make_listener_domain",
}

#: Events whose Lua handlers get no arguments (the Python hook's ``kumo`` is left out).
NO_ARGUMENT_EVENTS = frozenset({"init", "pre_init"})
#: Events that are not lookups but whose handler may answer (KumoMTA uses the value).
ANSWERING_EVENTS = frozenset({"smtp_server_ehlo"})
#: Events whose handler answers with two values (``return status, response``).
TWO_RESULT_EVENTS = frozenset({"smtp_server_rewrite_response"})
#: (event, argument): seconds in the Python hook, a ``kumo.time`` TimeDelta in Lua (or nil),
#: as KumoMTA passes ``Option<TimeDelta>``.
TIME_DELTA_ARGS = frozenset({("requeue_message", "delay")})
#: (event, argument): a dict handed to Lua as a plain table of its own (KumoMTA passes a
#: copy, ``HashMap`` → table) rather than as a live map proxy over the Python dict.
TABLE_ARGS = frozenset({("rebind_message", "data")})

Dispatch = Callable[[str, tuple[Any, ...]], Coroutine[Any, Any, Any]]


class LuaPolicy:
    """A loaded Lua policy; registered with the plugin manager as the operator's policy.

    On a configuration epoch bump (a monitored file changed, ``kumo.bump_config_epoch()``)
    the policy file is evaluated again in a fresh Lua runtime and its handlers replace the
    current ones, as KumoMTA builds new Lua states per epoch; ``init`` does not run again.
    The set of hooked built-in events is fixed when the policy is first registered: an
    event first registered by a reloaded policy needs a restart (a warning says so).
    """

    def __init__(
        self,
        path: str,
        engine: LuaEngine,
        registry: EventRegistry,
        functions: Mapping[str, Callable[..., Any]],
        stdlib: LuaStdlib | None = None,
    ) -> None:
        self.path = path
        self._use(engine, registry)
        self._functions = functions
        self.stdlib = stdlib
        self._reloading: asyncio.Task[None] | None = None
        self._reload_again = False
        #: How many times the policy was re-evaluated after an epoch bump.
        self.reloads = 0
        for spec in registry.registered():
            setattr(self, spec.hook, hookimpl(_make_impl(spec, self._dispatch)))

    def __repr__(self) -> str:
        events = ", ".join(spec.name for spec in self.registry.registered())
        return f"<LuaPolicy {self.path} [{events}]>"

    @property
    def events(self) -> list[str]:
        """The names of the events this policy registered handlers for."""
        return [spec.name for spec in self.registry.registered()]

    async def call_event(self, name: str, *args: Any) -> Any:
        """Run the policy's handler(s) for event ``name`` with Python arguments.

        Returns the converted result of a lookup and None for other events. Several
        handlers (KumoMTA's ``Multiple`` events) run in registration order as KumoMTA's
        ``CallbackSignature::call`` runs them: a handler that returns no value at all lets
        the next one run; the first that returns anything — ``nil`` included — ends the
        call, and its first value is the answer. Raises what the handler raised:
        :class:`kumocore.Rejection` unchanged, anything else as :class:`LuaPolicyError`.
        """
        engine, registry = self.engine, self.registry  # a reload may swap them meanwhile
        spec = registry.spec(name)
        lua_args = self._lua_args(engine, spec, args)
        for handler in registry.handlers(spec.name):
            try:
                count, first, second = await engine.run_counted(handler, *lua_args)
            except LuaPolicyError as exc:
                exc.add_note(f"in the Lua handler of kumo.on('{spec.name}', ...)")
                raise
            if count == 0:
                continue  # no `return`: KumoMTA goes on to the next handler
            if spec.name in TWO_RESULT_EVENTS:
                both = (engine.conv.from_lua(first), engine.conv.from_lua(second))
                result = None if both == (None, None) else both
            else:
                result = engine.conv.from_lua(first)
            if result is not None and (spec.firstresult or spec.name in ANSWERING_EVENTS):
                return self._result(spec, result)
            return None  # an explicit `return nil` (or a value an event ignores) stops too
        return None

    # ------------------------------------------------------------------ custom events
    @property
    def custom_events(self) -> list[str]:
        """The custom event names (``make.webhook``...) the policy registered."""
        return self.registry.custom_events()

    def has_custom_event(self, name: str) -> bool:
        """Whether the policy registered a handler for the custom event ``name``."""
        return bool(self.registry.handlers(name)) and name not in self.registry.specs

    async def call_custom_event(self, name: str, *args: Any) -> Any:
        """Call the handler registered with ``kumo.on(name, fn)`` for a custom event.

        This is how features that KumoMTA configures by constructor name reach the policy
        (``configure_log_hook{name = 'webhook'}`` calls ``make.webhook``, a ``custom_lua``
        protocol its ``constructor``). ``args`` are Python values (converted for Lua);
        returns the handler's first result converted to Python — a Lua function result
        stays callable through :meth:`call_lua_function`. Raises ``KeyError`` when no
        handler is registered, :class:`LuaPolicyError` when the handler fails.
        """
        engine, registry = self.engine, self.registry
        handlers = registry.handlers(name)
        if not handlers or name in registry.specs:
            raise KeyError(f"the policy registers no handler for the custom event '{name}'")
        lua_args = [engine.conv.to_lua(arg) for arg in args]
        try:
            return engine.conv.from_lua(await engine.run(handlers[-1], *lua_args))
        except LuaPolicyError as exc:
            exc.add_note(f"in the Lua handler of kumo.on('{name}', ...)")
            raise

    async def call_lua_function(self, fn: Any, *args: Any) -> Any:
        """Call a Lua function that a handler returned (e.g. a constructor's callback)."""
        engine = self.engine
        result = await engine.run(fn, *[engine.conv.to_lua(arg) for arg in args])
        return engine.conv.from_lua(result)

    # ------------------------------------------------------------------ reload
    def on_epoch(self, epoch: int) -> None:
        """Epoch listener: re-evaluate the policy file (one reload at a time)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            log.warning(
                "configuration epoch bumped outside the event loop; policy not reloaded",
                policy=self.path,
                epoch=epoch,
            )
            return
        if self._reloading is not None and not self._reloading.done():
            self._reload_again = True
            return
        self._reloading = loop.create_task(self._reload_loop(), name=f"reload {self.path}")

    async def _reload_loop(self) -> None:
        while True:
            self._reload_again = False
            await self.reload()
            if not self._reload_again:
                return

    async def reload(self) -> bool:
        """Evaluate the policy file in a fresh runtime and switch to its handlers.

        On failure the running handlers stay and the error is logged: a typo saved into
        the file must not take the server down. Returns whether the switch happened.
        """
        try:
            engine, registry = await _evaluate(self.path, self._functions, self.stdlib)
        except Exception as exc:
            log.error(
                "policy reload failed; keeping the running policy", policy=self.path, error=str(exc)
            )
            return False
        hooked = {spec.name for spec in self.registry.registered()}
        added = [spec.name for spec in registry.registered() if spec.name not in hooked]
        if added:
            log.warning(
                "the reloaded policy registers new events; they take effect after a restart",
                policy=self.path,
                events=added,
            )
        self._use(engine, registry)
        self.reloads += 1
        log.info("policy reloaded", policy=self.path, reloads=self.reloads)
        return True

    def _use(self, engine: LuaEngine, registry: EventRegistry) -> None:
        self.engine, self.registry = engine, registry
        # Looked up now, while no Lua coroutine runs (see LuaEngine.__init__ on lupa).
        self._entry_point = engine.bridge.entry_point

    def where_defined(self, event: str) -> list[str]:
        """``file:line`` of each handler registered for ``event`` (for error messages that
        name a handler after its call, such as a lookup's answer of the wrong type)."""
        places = (self._entry_point(fn) for fn in self.registry.handlers(event))
        return [str(place) for place in places if place is not None]

    async def _dispatch(self, name: str, args: tuple[Any, ...]) -> Any:
        return await self.call_event(name, *args)

    @staticmethod
    def _lua_args(engine: LuaEngine, spec: EventSpec, args: tuple[Any, ...]) -> list[Any]:
        converted = []
        for argname, value in zip(spec.argnames, args, strict=False):
            if argname == "kumo":
                continue  # init() gets no arguments in KumoMTA
            if (spec.name, argname) in TIME_DELTA_ARGS and isinstance(value, int | float):
                value = TimeDelta(value)  # KumoMTA passes a TimeDelta (delay.seconds...)
            if isinstance(value, dict) and (spec.name, argname) not in TABLE_ARGS:
                converted.append(engine.conv.proxy("map", value))
            else:
                converted.append(engine.conv.to_lua(value))
        return converted

    def _result(self, spec: EventSpec, value: Any) -> Any:
        maker = RESULT_MAKERS.get(spec.name)
        if maker is None or not isinstance(value, dict) or maker not in self._functions:
            return value
        try:
            return self._functions[maker](**value)
        except Exception as exc:
            raise LuaPolicyError(
                f"the '{spec.name}' handler returned a table that kumo.{maker} refused: {exc}",
                where=self.path,
            ) from exc


def _make_impl(spec: EventSpec, dispatch: Dispatch) -> Callable[..., Any]:
    """An ``async def kumo_<event>(<hook args>)`` function that dispatches to the policy.

    pluggy learns which arguments to pass from the function's code object, so the function
    must really have parameters named as in the hookspec; it is compiled from source.
    The names come from kumocore.hookspecs, and are checked to be plain identifiers.
    """
    params = [] if spec.name in NO_ARGUMENT_EVENTS else list(spec.argnames)
    for name in (spec.hook, *params):
        if not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(f"hookspec {spec.hook}: {name!r} is not a valid identifier")
    packed = f"({', '.join(params)}{',' if len(params) == 1 else ''})"
    source = (
        f"async def {spec.hook}({', '.join(params)}):\n"
        f"    return await _dispatch({spec.name!r}, {packed})\n"
    )
    namespace: dict[str, Any] = {"_dispatch": dispatch}
    exec(source, namespace)
    impl: Callable[..., Any] = namespace[spec.hook]
    impl.__doc__ = f"Lua policy handler(s) for kumo.on('{spec.name}', ...)."
    return impl


async def load_lua_policy(path: str, kumo: Any, stdlib: LuaStdlib | None = None) -> LuaPolicy:
    """The ``.lua`` policy loader: ``loader(path, kumo)`` of ``kumo_register_policy_loaders``.

    Runs the file's top-level code as a coroutine (it may look up DNS), then returns the
    plugin object exposing the events the policy registered. With ``stdlib`` (the plugin's
    shared state) the policy also reloads when the configuration epoch is bumped, and the
    policy file itself is monitored for changes.
    """
    functions: Mapping[str, Callable[..., Any]] = getattr(kumo, "functions", {})
    engine, registry = await _evaluate(path, functions, stdlib)
    policy = LuaPolicy(path, engine, registry, functions, stdlib)
    if stdlib is not None:
        stdlib.monitor.extra_files.add(os.path.abspath(path))
        stdlib.epoch.subscribe(policy.on_epoch)
    return policy
