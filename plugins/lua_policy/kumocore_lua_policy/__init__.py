"""kumocore plugin: run KumoMTA-style Lua policy files.

Installing this distribution registers the ``.lua`` policy loader (entry point
``lua_policy`` in the group ``kumocore``)::

    kumocore validate --policy policy.lua

The policy's ``local kumo = require 'kumo'`` gets every ``kumo.*`` function that core and
the installed plugins contribute; ``kumo.on(event, fn)`` registers handlers for the events
of the hook contract. See ``docs/lua-policy.md``.

Owns the Lua runtime, the bridge between Lua and kumocore's ``kumo.*`` functions and hooks,
and KumoMTA's Lua helper modules. It does not own the functions and hooks themselves: core
and the other plugins contribute those, and a Python policy gets the same ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kumocore import hookimpl
from kumocore_lua_policy.errors import LuaPolicyError

__all__ = ["LuaPolicyError", "LuaPolicyPlugin", "load_lua_policy"]


async def load_lua_policy(path: str, kumo: Any, stdlib: Any = None) -> Any:
    """Load a Lua policy file; returns its plugin object (a ``LuaPolicy``)."""
    # Imported here so that merely installing the plugin doesn't import lupa.
    from kumocore_lua_policy.policy import load_lua_policy as load

    return await load(path, kumo, stdlib)


class LuaPolicyPlugin:
    """Contributes the ``.lua`` policy loader, the ``kumo`` standard library (the
    functions KumoMTA's ``kumo`` module has beyond server definition: serde, string, regex,
    maps, digests, time, memoize, configuration epochs — see ``stdlib/``) and the Python
    backing of kumocore's ``policy-extras`` helper modules (``kumo.shaping.load``,
    ``kumo.policy_extras.*``)."""

    def __init__(self) -> None:
        from kumocore_lua_policy.redis_module import RedisPools
        from kumocore_lua_policy.stdlib import LuaStdlib

        self.stdlib = LuaStdlib()
        #: The pools of ``redis.open`` handles (KumoMTA's ``require 'redis'``).
        self.redis = RedisPools()

    async def _load(self, path: str, kumo: Any) -> Any:
        return await load_lua_policy(path, kumo, self.stdlib)

    @hookimpl
    def kumo_register_policy_loaders(self) -> Mapping[str, Any]:
        return {".lua": self._load}

    @hookimpl
    def kumo_register_policy_functions(self) -> Mapping[str, Callable[..., Any]]:
        from kumocore import apply_supplemental_trace_header
        from kumocore_lua_policy.extras import PolicyExtras
        from kumocore_lua_policy.sqlite_module import sqlite_functions

        # sqlite.* and redis.*: KumoMTA's `require 'sqlite'` / `require 'redis'` (bridge.lua).
        return {
            **self.stdlib.functions(),
            **PolicyExtras().policy_functions(),
            **sqlite_functions(),
            **self.redis.functions(),
            "apply_supplemental_trace_header": apply_supplemental_trace_header,
        }

    @hookimpl
    def kumo_register_config_epoch(self) -> Callable[[], int]:
        # Read on every reuse of an 'Epoch' configuration: a plain attribute, no work.
        epoch = self.stdlib.epoch
        return lambda: epoch.value

    @hookimpl
    def kumo_register_config_epoch_bump(self) -> Callable[[], int]:
        # What kumo.bump_config_epoch() does: listeners (the policy reloader) run too.
        return self.stdlib.epoch.bump

    @hookimpl
    def kumo_init(self) -> None:
        # Watch the monitored files from now on (KumoMTA starts its monitor after init).
        self.stdlib.monitor.start()

    @hookimpl
    async def kumo_shutdown(self) -> None:
        await self.stdlib.monitor.stop()
        await self.redis.close()
