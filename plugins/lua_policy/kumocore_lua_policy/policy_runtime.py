"""A fresh Lua runtime that ran a policy file: what loading and each reload evaluate.

``require 'kumo'`` returns a plain, mutable Lua table, as in KumoMTA, so a policy (or a
wrapper file that ``dofile``s it) may replace or wrap its functions. It holds every entry
of ``kumo.functions`` — what core and the installed plugins contribute — with dotted names
as nested tables (``kumo.dns.lookup_mx``), plus ``kumo.on``. The runtime also gets the
``kumo`` standard library and the policy's ``package.path``, then runs the file's
top-level code; the events it registered come back with the runtime.

Its own module because it is what both the first load and every reload after a
configuration epoch bump build, apart from the loaded policy as a pluggy plugin
(:class:`~kumocore_lua_policy.policy.LuaPolicy`), which only switches to the result.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from kumocore_lua_policy.engine import LuaEngine
from kumocore_lua_policy.errors import LuaPolicyError
from kumocore_lua_policy.events import EventRegistry
from kumocore_lua_policy.extras import bind as bind_policy_extras
from kumocore_lua_policy.package_path import lua_package_path
from kumocore_lua_policy.stdlib import LuaStdlib
from kumocore_lua_policy.stdlib_lua import install_stdlib


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


async def _evaluate(
    path: str, functions: Mapping[str, Callable[..., Any]], stdlib: LuaStdlib | None
) -> tuple[LuaEngine, EventRegistry]:
    """A fresh runtime that ran the policy file's top-level code; its registered events."""
    engine = LuaEngine()
    registry = EventRegistry(is_function=lambda value: engine.conv.lua_type(value) == "function")
    bind_policy_extras(functions)
    table = build_kumo_table(engine, functions, registry)
    install_stdlib(engine, table, stdlib or LuaStdlib())
    policy_dir = os.path.dirname(os.path.abspath(path))
    engine.install(table, lambda default: lua_package_path(policy_dir, default))
    chunk = engine.load_file(path)
    await engine.run(chunk)
    registry.close()
    return engine, registry
