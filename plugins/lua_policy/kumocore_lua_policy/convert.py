"""Values across the bridge: Lua tables ⇄ Python containers, Python objects → proxies.

Lua → Python (:meth:`Converter.from_lua`):
  a table whose keys are exactly ``1..n`` becomes a list, any other table a dict (nested,
  recursively); an empty table becomes ``{}`` (what mlua/serde does in KumoMTA — kumocore's
  config accepts ``{}`` wherever a list is expected). A proxy table gives back the very
  Python object it stands for, so ``return kumo.make_queue_config{...}`` hands the real
  ``QueueConfig`` to the hook. Functions, coroutines and other values pass through as is.

Python → Lua (:meth:`Converter.to_lua`):
  mappings and sequences become fresh (mutable) tables, as KumoMTA's serde values do, so
  ``kumo.dns.lookup_mx(d).site_name`` and ``ipairs(mx.hosts)`` work; plain functions become
  Lua functions (through the bridge, so they may be async); a ``Message`` becomes a message
  proxy (``msg:method(...)``); any other object — a dataclass, a config, a DKIM signer —
  becomes a read-only proxy table whose fields are read on demand.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from kumocore import Message

#: Deeper nesting than this is almost certainly a cycle (``t.self = t``).
MAX_DEPTH = 100

_SCALARS = (bool, int, float, str, bytes)
_SEQUENCES = (list, tuple, set, frozenset)


class ConversionError(ValueError):
    """A value cannot cross the bridge (a cyclic table, an unsupported key)."""


class Converter:
    """Converts values for one Lua runtime. ``bridge`` is attached once it is loaded."""

    def __init__(self, lua: Any, lua_type: Callable[[Any], str | None]) -> None:
        self.lua = lua
        self.lua_type = lua_type
        self.bridge: Any = None

    def attach(
        self, bridge: Any, wrap: Callable[[Callable[..., Any], str], Any], rehome: Any
    ) -> None:
        # Functions are fetched once, here: see LuaEngine.__init__ on lupa table lookups.
        self.bridge = bridge
        self._wrap = wrap
        self._proxy = bridge.proxy
        self._target = bridge.target
        self._rehome = rehome

    # ------------------------------------------------------------------ Python → Lua
    def to_lua(self, value: Any, depth: int = 0) -> Any:
        if value is None or isinstance(value, _SCALARS):
            return value
        if depth > MAX_DEPTH:
            raise ConversionError("value nested too deeply to pass to Lua (a cycle?)")
        if isinstance(value, enum.Enum):
            return self.to_lua(value.value, depth + 1)
        if isinstance(value, Mapping):
            table = self.lua.table()
            for key, item in value.items():
                table[self._key(key)] = self.to_lua(item, depth + 1)
            return table
        if isinstance(value, _SEQUENCES):
            table = self.lua.table()
            for index, item in enumerate(value, 1):
                table[index] = self.to_lua(item, depth + 1)
            return table
        if self.lua_type(value) is not None:
            return value  # already a Lua value (a table, function... from this runtime)
        if _is_plain_function(value):
            return self._wrap(value, f"<function {getattr(value, '__name__', 'python')}>")
        if isinstance(value, Message) or getattr(value, "__kumo_methods__", False):
            # Objects with methods (a message, an HTTP client...): obj:method(...) calls.
            return self.proxy("message", value)
        if getattr(type(value), "lua_proxy", None) == "map":
            return self.proxy("map", value)  # indexed like a table (kumo.domain_map...)
        if getattr(value, "__kumo_fields__", False):
            return self.proxy("fields", value)  # part.body and part:method()
        return self.proxy("object", value)

    def proxy(self, kind: str, obj: Any) -> Any:
        """A proxy table of ``kind`` (``object``, ``map`` or ``message``) for ``obj``; a
        ``message`` proxy names its class, by which the bridge keeps its method functions."""
        if kind != "message":
            return self._proxy(kind, obj)
        cls = type(obj)
        return self._proxy(kind, obj, f"{cls.__module__}.{cls.__qualname__}")

    def _key(self, key: Any) -> Any:
        if isinstance(key, enum.Enum):
            key = key.value
        if key is None or not isinstance(key, _SCALARS):
            raise ConversionError(f"a Lua table key must be a string or number, got {key!r}")
        return key

    # ------------------------------------------------------------------ Lua → Python
    def from_lua(self, value: Any, depth: int = 0) -> Any:
        kind = self.lua_type(value)
        if kind is None:
            return value
        if kind != "table":
            # A function (a handler, a callback) that Python keeps. lupa binds it to the
            # stack of the coroutine it came from and would use that stack again when it
            # is freed — after Lua may have collected the coroutine. Re-bind it to the
            # main state.
            return self._rehome(value)
        if depth > MAX_DEPTH:
            raise ConversionError("table nested too deeply to pass to Python (a cycle?)")
        items = list(value.items())
        if not items:
            # Proxies are empty tables with a metatable: give back their Python object.
            target = self._target(value)
            return {} if target is None else target
        keys = [key for key, _ in items]
        if all(type(key) is int for key in keys) and set(keys) == set(range(1, len(keys) + 1)):
            items.sort(key=lambda item: item[0])
            return [self.from_lua(item, depth + 1) for _, item in items]
        return {key: self.from_lua(item, depth + 1) for key, item in items}


def _is_plain_function(value: Any) -> bool:
    """Functions and methods become Lua functions; callable *objects* (a signer with
    ``__call__``) stay objects, so that passing them back keeps their identity."""
    return (
        inspect.isfunction(value)
        or inspect.ismethod(value)
        or inspect.isbuiltin(value)
        or isinstance(value, partial)
    )


def public_fields(obj: Any) -> list[str]:
    """The names ``pairs()`` lists for an object proxy: dataclass fields, public instance
    attributes and properties."""
    names: list[str] = []
    if dataclasses.is_dataclass(obj):
        names.extend(field.name for field in dataclasses.fields(obj))
    else:
        names.extend(getattr(obj, "__dict__", {}))
    for name, attr in inspect.getmembers(type(obj)):
        if isinstance(attr, property) and name not in names:
            names.append(name)
    return [name for name in names if not name.startswith("_")]
