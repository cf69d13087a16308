"""Python backing of kumocore's ``policy-extras`` Lua modules (``lua/policy-extras/``).

The Lua modules are thin: they take the operator's arguments, call one of the functions
below to load and validate the data files, and register the event handlers. Parsing,
merging and lookups happen here, in Python, so that a bad data file is reported with its
file and key when the policy loads (``kumocore validate``, and ``serve`` before it
listens), never as a Lua error on the first message.

Functions contributed to ``kumo`` (see :func:`policy_functions`):

* ``kumo.shaping.load(files, options)`` — KumoMTA's function;
* ``kumo.policy_extras.*`` — kumocore's own loaders behind the helper modules.

Owns loading and checking the helpers' data files. It does not own the Lua side of the
helpers (``lua/policy-extras/``) or the hooks they register.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any

from kumocore import ConfigError, lua_type_name, policy_function
from kumocore_lua_policy.extras import shaping
from kumocore_lua_policy.extras.datafile import load_data_file
from kumocore_lua_policy.extras.dkim_data import DkimData
from kumocore_lua_policy.extras.listener_domains import ListenerDomains
from kumocore_lua_policy.extras.queues import QueueHelper
from kumocore_lua_policy.extras.sources import Sources


def lua_module_dir() -> str:
    """The directory holding ``policy-extras/*.lua``: an entry of Lua's ``package.path``."""
    return str(resources.files("kumocore_lua_policy").joinpath("lua"))


def default_shaping_file() -> str:
    """kumocore's own default shaping file, loaded first by the shaping helper."""
    return str(resources.files("kumocore_lua_policy").joinpath("lua/policy-extras/shaping.toml"))


class PolicyExtras:
    """One runtime's loaders. ``kumo.shaping.load`` resolves MX records through the
    runtime's ``kumo.dns.lookup_mx``, which :func:`bind` hands over once the policy's
    function table is known."""

    def __init__(self) -> None:
        self._functions: Mapping[str, Callable[..., Any]] = {}
        # Shaping data loaded by this runtime, by handle: setup_with_automation hands the
        # handle back to build automation on the data it loaded. Held weakly: the table
        # returned to Lua keeps its data alive, and policies reload shaping data for ever
        # (every 30 s in the tsa-daemon, every memoize ttl in nodes), which a list kept.
        self._loaded: weakref.WeakValueDictionary[int, shaping.Shaping] = (
            weakref.WeakValueDictionary())
        self._handles = itertools.count(1)

    def bind(self, functions: Mapping[str, Callable[..., Any]]) -> None:
        self._functions = functions

    async def _lookup_mx(self, domain: str) -> Mapping[str, Any]:
        result: Mapping[str, Any] = await self._functions["dns.lookup_mx"](domain)
        return result

    @policy_function(table=False)
    async def load_shaping(
        self, files: Any, options: Mapping[str, Any] | None = None
    ) -> dict[str, Callable[..., Any]]:
        if options is not None and not isinstance(options, Mapping):
            raise ConfigError("kumo.shaping.load: OPTIONS must be a table, "
                              f"got {lua_type_name(options)}")
        lookup = self._lookup_mx if "dns.lookup_mx" in self._functions else None
        data = await shaping.load(files, options, lookup)
        handle = next(self._handles)
        self._loaded[handle] = data
        table: dict[str, Any] = methods(
            data, ("get_egress_path_config", "get_errors", "get_warnings", "get_referenced_sources")
        )
        table["automation_handle"] = handle
        return table

    @policy_function(table=False)
    def shaping_automation(
        self, handle: int, publish: Any = None, subscribe: Any = None
    ) -> Mapping[str, Any]:
        """``setup_with_automation``'s engine (kumocore.tsa) on loaded shaping data."""
        from kumocore_lua_policy.extras.shaping_automation import setup

        configure = self._functions["automation.configure"]
        data = self._loaded.get(handle) if isinstance(handle, int) else None
        if data is None:  # a policy calling this itself, not setup_with_automation
            raise ConfigError("kumo.policy_extras.shaping_automation: HANDLE must be the "
                              "automation_handle of a table kumo.shaping.load returned, "
                              f"got {lua_type_name(handle)}")
        return setup(data, configure, publish, subscribe)

    def policy_functions(self) -> dict[str, Callable[..., Any]]:
        return {
            "shaping.load": self.load_shaping,
            "policy_extras.listener_domains": _loader(ListenerDomains, "get_listener_domain"),
            "policy_extras.sources": _loader(Sources, "get_egress_source", "get_egress_pool"),
            "policy_extras.dkim_data": _loader(DkimData, "sign"),
            "policy_extras.queue": _loader(QueueHelper, "apply", "resolve", "params",
                                           "overall_throttles", "has_overall_rates",
                                           "wants_provider"),
            "policy_extras.load_data_file": _load_data_file,
            "policy_extras.default_shaping_file": default_shaping_file,
            "policy_extras.shaping_automation": self.shaping_automation,
        }


def _loader(cls: Callable[[Any], Any], *names: str) -> Callable[[Any], dict[str, Any]]:
    """``kumo.policy_extras.<x>(files)``: load the files, give Lua the lookup functions."""

    def load(files: Any) -> dict[str, Any]:
        return methods(cls(files), names)

    load.__name__ = getattr(cls, "__name__", "load")
    load.__doc__ = cls.__doc__
    return load


def methods(obj: Any, names: Sequence[str]) -> dict[str, Callable[..., Any]]:
    """A table of ``obj``'s methods for Lua (Lua sees only data on a Python object).

    Each may be called with ``.`` or ``:`` — ``data:get_errors()`` as KumoMTA's
    policies write it passes the table itself first, which is dropped here: a table that
    holds every one of these methods (a caller may have added other fields to it, as
    ``load_shaping`` does).
    """
    keys = frozenset(names)

    def method(name: str) -> Callable[..., Any]:
        bound = getattr(obj, name)

        def call(*args: Any) -> Any:
            if args and isinstance(args[0], dict) and keys <= args[0].keys():
                args = args[1:]
            return bound(*args)

        call.__name__ = name
        return call

    return {name: method(name) for name in names}


def _load_data_file(path: str) -> dict[str, Any]:
    return load_data_file("policy-extras.policy_utils", path)


def bind(functions: Mapping[str, Callable[..., Any]]) -> None:
    """Give this runtime's :class:`PolicyExtras` the function table it resolves MX with."""
    owner = getattr(functions.get("shaping.load"), "__self__", None)
    if isinstance(owner, PolicyExtras):
        owner.bind(functions)
