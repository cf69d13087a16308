"""Building a plugin manager: hook specs, entry-point plugins, blocked plugins.

A third-party plugin is a distribution with an entry point in the group ``kumocore``. The
entry point names a module or a class; a class is instantiated once per plugin manager so
that its state belongs to that manager (tests build a fresh manager each).

Environment:
  ``KUMOCORE_DISABLE_PLUGIN_AUTOLOAD=1`` skips entry points entirely;
  ``KUMOCORE_BLOCK_PLUGINS=a,b`` blocks the named entry points.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from kumocore import hookspecs

ENTRY_POINT_GROUP = "kumocore"
AUTOLOAD_ENV = "KUMOCORE_DISABLE_PLUGIN_AUTOLOAD"
BLOCK_ENV = "KUMOCORE_BLOCK_PLUGINS"
#: The name the operator's policy is registered under (custom events look it up).
POLICY_PLUGIN_NAME = "policy"


class PluginLoadError(Exception):
    """A plugin could not be loaded or breaks the hook contract."""


@dataclass(frozen=True)
class PluginInfo:
    """What ``kumocore plugins`` prints about one registered plugin."""

    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]


def _blocked_from_env() -> set[str]:
    raw = os.environ.get(BLOCK_ENV, "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def _refuse_wrappers(pm: pluggy.PluginManager, name: str) -> None:
    """Wrappers cannot wrap coroutines and kumocore does not run pluggy's call loop."""
    for caller in pm.get_hookcallers(pm.get_plugin(name)) or []:
        for impl in caller.get_hookimpls():
            if impl.plugin_name == name and (impl.hookwrapper or impl.wrapper):
                pm.unregister(name=name)
                raise PluginLoadError(
                    f"plugin {name!r}: {caller.name} is a wrapper implementation; "
                    "kumocore hooks may be async and cannot be wrapped — "
                    "use an ordinary (optionally tryfirst/trylast) implementation"
                )


def register_plugin(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    """Register ``plugin`` (a module or an object with ``@hookimpl`` methods)."""
    if inspect.isclass(plugin):
        plugin = plugin()
    try:
        pm.register(plugin, name=name)
    except ValueError as exc:
        raise PluginLoadError(f"plugin {name!r} could not be registered: {exc}") from exc
    _refuse_wrappers(pm, name)


def _distributions(pm: pluggy.PluginManager) -> dict[str, metadata.Distribution | None]:
    """Which distribution each entry-point plugin came from (for ``kumocore plugins``)."""
    dists: dict[str, metadata.Distribution | None] | None = getattr(pm, "_kumocore_dists", None)
    if dists is None:
        dists = {}
        pm._kumocore_dists = dists  # type: ignore[attr-defined]
    return dists


def load_entry_points(pm: pluggy.PluginManager, blocked: Iterable[str] = ()) -> list[str]:
    """Load every entry point of the ``kumocore`` group that is not blocked."""
    blocked_names = set(blocked) | _blocked_from_env()
    loaded = []
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in blocked_names or pm.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginLoadError(
                f"plugin {ep.name!r} ({ep.value}) failed to import: {exc}"
            ) from exc
        register_plugin(pm, plugin, ep.name)
        _distributions(pm)[ep.name] = getattr(ep, "dist", None)
        loaded.append(ep.name)
    return loaded


def make_plugin_manager(
    *,
    load_entrypoints: bool | None = None,
    blocked: Iterable[str] = (),
    plugins: Iterable[tuple[str, Any]] = (),
    core: tuple[str, object] | None = None,
) -> pluggy.PluginManager:
    """A fresh plugin manager with kumocore's hook specs and the installed plugins.

    ``core`` (the built-in plugin) is registered first, so it is called last: built-in
    defaults are the fallback for every lookup. ``plugins`` are extra ``(name, plugin)``
    pairs registered after entry points, so they run before them (pluggy calls the most
    recently registered first); the operator's policy is registered later still.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if core is not None:
        register_plugin(pm, core[1], core[0])
    if load_entrypoints is None:
        load_entrypoints = os.environ.get(AUTOLOAD_ENV, "") not in ("1", "true", "yes")
    if load_entrypoints:
        load_entry_points(pm, blocked)
    for name, plugin in plugins:
        register_plugin(pm, plugin, name)
    return pm


def describe_plugins(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Name, distribution, version and implemented hooks of every registered plugin."""
    dists = _distributions(pm)
    infos = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
        if plugin is None:
            continue
        hooks = tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or []))
        dist = dists.get(name)
        infos.append(
            PluginInfo(
                name=name,
                distribution=dist.metadata["Name"] if dist else None,
                version=dist.version if dist else None,
                hooks=hooks,
            )
        )
    return infos
