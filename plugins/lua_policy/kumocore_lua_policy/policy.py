"""Loading a ``.lua`` policy, and the loaded policy as a pluggy plugin.

``require 'kumo'`` returns a plain, mutable Lua table, as in KumoMTA, so a policy (or a
wrapper file that ``dofile``s it) may replace or wrap its functions. It holds every entry
of ``kumo.functions`` — what core and the installed plugins contribute — with dotted names
as nested tables (``kumo.dns.lookup_mx``), plus ``kumo.on``.

The loaded policy has one async ``@hookimpl`` per registered event.

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

import keyword
import os
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from kumocore import hookimpl
from kumocore_lua_policy.engine import LuaEngine
from kumocore_lua_policy.errors import LuaPolicyError
from kumocore_lua_policy.events import EventRegistry, EventSpec

#: Lookup event → the ``kumo.*`` constructor a plain returned table is passed through.
RESULT_MAKERS = {
    "get_queue_config": "make_queue_config",
    "get_egress_path_config": "make_egress_path",
    "get_egress_pool": "make_egress_pool",
    "get_egress_source": "make_egress_source",
    "get_listener_domain": "make_listener_domain",
}

#: Events that are not lookups but whose handler may answer (KumoMTA uses the value).
ANSWERING_EVENTS = frozenset({"smtp_server_ehlo"})
#: Events whose handler answers with two values (``return status, response``).
TWO_RESULT_EVENTS = frozenset({"smtp_server_rewrite_response"})

Dispatch = Callable[[str, tuple[Any, ...]], Coroutine[Any, Any, Any]]


class LuaPolicy:
    """A loaded Lua policy; registered with the plugin manager as the operator's policy."""

    def __init__(
        self,
        path: str,
        engine: LuaEngine,
        registry: EventRegistry,
        functions: Mapping[str, Callable[..., Any]],
    ) -> None:
        self.path = path
        self.engine = engine
        self.registry = registry
        self._functions = functions
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

        Returns the converted result of a lookup (the first non-nil one when several
        handlers are registered) and None for other events. Raises what the handler raised:
        :class:`kumocore.Rejection` unchanged, anything else as :class:`LuaPolicyError`.
        """
        spec = self.registry.spec(name)
        lua_args = self._lua_args(spec, args)
        for handler in self.registry.handlers(spec.name):
            try:
                if spec.name in TWO_RESULT_EVENTS:
                    pair = await self.engine.run(handler, *lua_args, two_results=True)
                    result = tuple(map(self.engine.conv.from_lua, pair))
                    result = None if result == (None, None) else result
                else:
                    result = self.engine.conv.from_lua(await self.engine.run(handler, *lua_args))
            except LuaPolicyError as exc:
                exc.add_note(f"in the Lua handler of kumo.on('{spec.name}', ...)")
                raise
            if result is not None:
                if spec.firstresult or spec.name in ANSWERING_EVENTS:
                    return self._result(spec, result)
                return None
        return None

    async def _dispatch(self, name: str, args: tuple[Any, ...]) -> Any:
        return await self.call_event(name, *args)

    def _lua_args(self, spec: EventSpec, args: tuple[Any, ...]) -> list[Any]:
        converted = []
        for argname, value in zip(spec.argnames, args, strict=False):
            if argname == "kumo":
                continue  # init() gets no arguments in KumoMTA
            if isinstance(value, dict):
                converted.append(self.engine.conv.proxy("map", value))
            else:
                converted.append(self.engine.conv.to_lua(value))
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
    params = [] if spec.name == "init" else list(spec.argnames)
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


def build_kumo_table(
    engine: LuaEngine, functions: Mapping[str, Callable[..., Any]], registry: EventRegistry
) -> Any:
    """The ``kumo`` Lua table: nested tables for dotted names, wrapped Python functions."""
    kumo = engine.table()
    for dotted in sorted(functions):
        *parents, leaf = dotted.split(".")
        namespace = kumo
        for index, part in enumerate(parents):
            child = namespace[part]
            if child is None:
                child = engine.table()
                namespace[part] = child
            elif engine.conv.lua_type(child) != "table":
                owner = ".".join(parents[: index + 1])
                raise LuaPolicyError(f"kumo.{dotted} clashes with the function kumo.{owner}")
            namespace = child
        namespace[leaf] = engine.wrap(functions[dotted], f"kumo.{dotted}")
    kumo["on"] = engine.wrap(registry.on, "kumo.on")
    return kumo


async def load_lua_policy(path: str, kumo: Any) -> LuaPolicy:
    """The ``.lua`` policy loader: ``loader(path, kumo)`` of ``kumo_register_policy_loaders``.

    Runs the file's top-level code as a coroutine (it may look up DNS), then returns the
    plugin object exposing the events the policy registered.
    """
    engine = LuaEngine()
    registry = EventRegistry(is_function=lambda value: engine.conv.lua_type(value) == "function")
    functions: Mapping[str, Callable[..., Any]] = getattr(kumo, "functions", {})
    table = build_kumo_table(engine, functions, registry)
    policy_dir = os.path.dirname(os.path.abspath(path))
    engine.install(table, policy_dir)
    chunk = engine.load_file(path)
    await engine.run(chunk)
    registry.close()
    return LuaPolicy(path, engine, registry, functions)
