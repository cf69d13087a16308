"""One Lua runtime and the driver that runs Lua code as coroutines on the asyncio loop.

Lua code reads synchronously (``local mx = kumo.dns.lookup_mx(d)``) but must not block the
event loop. So every entry into Lua — the policy's top-level code and each event handler —
runs as a Lua coroutine started by :meth:`LuaEngine.run`. When Lua calls a ``kumo.*``
function, :meth:`LuaEngine.invoke` calls the Python function; if that returns an awaitable,
the bridge yields it out of the coroutine, ``run`` awaits it on the loop and resumes the
coroutine with the result (or the error). Meanwhile other coroutines — other messages'
handlers — run: many handlers interleave in one runtime, each on its own Lua stack.

Why Lua 5.4 (``lupa.lua54``) rather than LuaJIT: KumoMTA embeds Lua 5.4, and policies
written for it may use 5.4 semantics — integer/float subtypes (``connection_limit = 3``
stays an integer), ``//``, ``utf8``, ``<const>``/``<close>``, ``goto`` — and 5.4's error
messages (``bad argument #1 to 'for iterator'``). 5.4 also yields across ``pcall`` and
metamethods and through ``dofile``. LuaJIT's speed buys little here: policy code is small
and time goes into I/O and into crossing the bridge.

Bounds: Lua shares the loop's thread, so code that runs :data:`LUA_SLICE_SECONDS` without
yielding is stopped (a count hook, ``bridge.lua``) with an error naming its line, and the
runtime's heap is capped at :data:`LUA_MAX_MEMORY`; both become ordinary policy errors.
A ``while true do end`` in a handler had frozen the process: every client, the HTTP API
and SIGTERM (an outside check).
"""

from __future__ import annotations

import importlib
import inspect
import sys
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

from kumocore import ConfigError, MultipleValues, Rejection, takes_table
from kumocore_lua_policy.arity import call_fitting, misfit
from kumocore_lua_policy.byte_strings import BYTES_ARGS_LUA, accept, wants_bytes
from kumocore_lua_policy.convert import Converter
from kumocore_lua_policy.errors import (
    KumoCallError,
    LuaPolicyError,
    error_from_info,
    load_error,
    scrub,
)
from kumocore_lua_policy.proxies import ProxyHelpers

#: Seconds Lua code may run without yielding to the loop (a ``kumo.*`` call that waits)
#: before it is stopped: longer than any sane handler's own work, short enough that a
#: loop that never ends costs other clients seconds, not the server.
LUA_SLICE_SECONDS = 5.0
#: Bytes the Lua heap of one policy may hold (its data tables included).
LUA_MAX_MEMORY = 1 << 30
#: The attribute of a ``kumo.log_*`` function
#: (``kumocore.policy.basic_functions.LOG_WITH_LOCATION``, not imported: core's built-in
#: policy functions are not part of the plugin API).
_LOG_WITH_LOCATION = "with_location"


class _Pending:
    """An awaitable a ``kumo.*`` function returned, travelling through Lua to the driver."""

    __slots__ = ("awaitable", "name")

    def __init__(self, name: str, awaitable: Any) -> None:
        self.name = name
        self.awaitable = awaitable

    def discard(self) -> None:
        close = getattr(self.awaitable, "close", None)
        if close is not None:
            close()  # never awaited: close the coroutine so Python doesn't warn


def _attribute_filter(obj: Any, name: Any, is_setting: bool) -> Any:
    """Lua may read public attributes of Python objects that reach it, never write them."""
    if is_setting or not isinstance(name, str) or name.startswith("_"):
        raise AttributeError(f"access to {name!r} of a Python object is not allowed from Lua")
    return name


def _lua54() -> Any:
    try:
        return importlib.import_module("lupa.lua54")
    except ImportError as exc:  # pragma: no cover - lupa wheels ship lua54
        raise ConfigError("Lua policies need lupa built with Lua 5.4 (lupa.lua54)") from exc


class LuaEngine:
    """A Lua 5.4 runtime with the bridge loaded; one per loaded policy."""

    def __init__(self) -> None:
        lua54 = _lua54()
        self.lua = lua54.LuaRuntime(
            unpack_returned_tuples=True,
            register_eval=False,
            register_builtins=False,
            attribute_filter=_attribute_filter,
            # A policy's heap is bounded: an allocation past it is a policy error ("not
            # enough memory"), where string.rep('x', 2^30) grew the worker by 2 GB.
            max_memory=LUA_MAX_MEMORY,
        )
        self.conv = Converter(self.lua, lua54.lua_type)
        helpers: dict[str, Any] = dict(ProxyHelpers(self.conv, self.wrap).as_lua_table())
        helpers.update(
            invoke=self.invoke,
            discard=_Pending.discard,
            write=_write,
            monotonic=time.monotonic,
            slice_seconds=LUA_SLICE_SECONDS,
        )
        source = resources.files(__package__).joinpath("bridge.lua").read_text("utf-8")
        chunk = self.lua.eval("load")(source, "=kumo-bridge")
        self.bridge = chunk(self.lua.table_from(helpers))
        # Keep the bridge's functions, don't look them up later: lupa 2.8 returns garbage
        # for a table lookup made from Python while a Lua coroutine is running (calls,
        # iteration and stores are fine), and wrap/proxy are used in exactly that spot.
        self._wrap = self.bridge.wrap
        self._log_call = self.bridge.log_call
        self._set_policy_source = self.bridge.set_policy_source
        self._start = self.bridge.start
        self.install = self.bridge.install
        # Returning a Lua value from a function of the main state re-binds it to the main
        # state, which lives as long as the runtime (see Converter.from_lua).
        self.conv.attach(self.bridge, self.wrap, self.lua.eval("function(value) return value end"))
        as_getter = lua54.as_itemgetter
        self._bytes_args = self.lua.eval("load")(BYTES_ARGS_LUA, "=kumo-bridge")(
            lambda text: as_getter(text.encode("latin-1")), accept
        )

    # ------------------------------------------------------------------ calls from Lua
    def wrap(self, fn: Callable[..., Any], name: str) -> Any:
        """A Lua function that calls ``fn`` (named ``name`` in errors), awaiting if needed.

        Two marks on ``fn`` add a step in Lua first: ``takes_bytes`` (binary string
        arguments reach it as ``bytes``), and a ``with_location`` attribute, the form of a
        ``kumo.log_*`` function that takes the record rendered as Lua shows its arguments
        and the calling policy line (``bridge.log_call``; kumocore.policy.basic_functions)."""
        with_location = getattr(fn, _LOG_WITH_LOCATION, None)
        if with_location is not None:
            return self._log_call(self._wrap(with_location, name))
        if wants_bytes(fn):
            return self._bytes_args(self._wrap(fn, name))
        return self._wrap(fn, name)

    def invoke(self, fn: Callable[..., Any], name: str, *lua_args: Any) -> tuple[str, Any]:
        """Called by every wrapped function: convert, call, and say what happened.

        Table-style functions (``@policy_function(table=True)``) get the Lua options table
        as keyword arguments; others get their arguments positionally. A string in a table
        argument that is not UTF-8 answers ``binary``: the bridge then names the argument.
        """
        try:
            args, kwargs = self._arguments(fn, name, lua_args)
        except UnicodeDecodeError as exc:  # the bridge names the argument (binary_argument)
            return "binary", KumoCallError(name, scrub(exc))
        except Exception as exc:
            return "error", KumoCallError(name, scrub(exc))
        finally:
            # lupa ties Lua values passed into a callback to the running coroutine's stack;
            # keep none of them beyond this call (see errors.scrub).
            del lua_args
        try:
            result = call_fitting(fn, args, kwargs)
            if inspect.isawaitable(result):
                return "await", _Pending(name, result)
            return self._answer(result)
        except Rejection as exc:
            return "error", exc
        except TypeError as exc:
            return "error", KumoCallError(name, _misfit_call(fn, args, kwargs) or exc)
        except Exception as exc:
            return "error", KumoCallError(name, exc)

    def _arguments(
        self, fn: Callable[..., Any], name: str, lua_args: tuple[Any, ...]
    ) -> tuple[list[Any], dict[str, Any]]:
        if takes_table(fn):
            return [], self._options(name, lua_args)
        return [self.conv.from_lua(arg) for arg in lua_args], {}

    def _options(self, name: str, args: tuple[Any, ...]) -> dict[str, Any]:
        if not args or (len(args) == 1 and args[0] is None):
            return {}
        options = self.conv.from_lua(args[0]) if len(args) == 1 else None
        if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
            raise ConfigError(f"{name} takes one table of options: {name} {{ key = value }}")
        return options

    # ------------------------------------------------------------------ the driver
    async def run(self, fn: Any, *args: Any, two_results: bool = False) -> Any:
        """Run the Lua function ``fn(*args)`` as a coroutine; return its first result
        (with ``two_results``, a pair of its first two).

        Raises the :class:`~kumocore.Rejection` the Lua code raised, or a
        :class:`~kumocore_lua_policy.errors.LuaPolicyError` naming the policy's line.
        """
        _count, first, second = await self.run_counted(fn, *args)
        return (first, second) if two_results else first

    async def run_counted(self, fn: Any, *args: Any) -> tuple[int, Any, Any]:
        """As :meth:`run`: how many values ``fn`` returned (0 for no ``return``, 1 for
        ``return nil``), its first and its second result."""
        step, close = self._start(fn, *args)
        try:
            kind, value, *extra = step()
            while kind == "await":
                kind, value, *extra = step(*await self._settle(value))
        except Exception as exc:  # lupa could not convert a value (e.g. invalid UTF-8)
            close()
            raise LuaPolicyError(f"Lua value could not cross into Python: {exc}") from exc
        except BaseException:
            close()  # cancelled mid-await: run the coroutine's to-be-closed variables
            raise
        if kind == "done":
            second, count = extra
            return int(count), value, second
        raise error_from_info(value)

    async def _settle(self, pending: _Pending) -> tuple[str, Any]:
        """Await a pending call; the answer is what the bridge resumes the coroutine with."""
        try:
            result = await pending.awaitable
        except Rejection as exc:
            return "error", exc
        except Exception as exc:
            return "error", KumoCallError(pending.name, exc)
        try:
            return self._answer(result)
        except Exception as exc:
            return "error", KumoCallError(pending.name, exc)

    def _answer(self, result: Any) -> tuple[str, Any]:
        """How the bridge returns ``result``: one value, or several (MultipleValues)."""
        if isinstance(result, MultipleValues):
            values = self.conv.to_lua(list(result))
            values["n"] = len(result)
            return "multi", values
        return "ok", self.conv.to_lua(result)

    # ------------------------------------------------------------------ loading
    def load_file(self, path: str) -> Any:
        """Compile a policy file (chunk name ``@path``, as ``dofile`` would).

        The bridge is told the chunk name: KumoMTA loads its policy file under the bare
        path, so ``kumo.log_*`` abbreviate that one's name differently (bridge.lua)."""
        loaded = self.lua.eval("loadfile")(path)
        if isinstance(loaded, tuple):  # (nil, message)
            raise load_error(path, str(loaded[1]))
        self._set_policy_source("@" + path)
        return loaded

    def table(self, values: dict[str, Any] | None = None) -> Any:
        return self.lua.table_from(values or {})


def _write(text: str) -> None:
    sys.stdout.write(f"{text}\n")


def _misfit_call(
    fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]
) -> Exception | None:
    """When a call raised ``TypeError`` because it did not fit ``fn``'s parameters (an
    argument left out, one too many), that said in a policy author's words; None when the
    ``TypeError`` came from inside ``fn``. Only looked at after such a failure: the
    signature costs nothing on a call that works."""
    # KumoMTA passes nil for an argument left out; kumocore names what is missing.
    why = misfit(fn, args, kwargs)
    return None if why is None else ConfigError(why)
