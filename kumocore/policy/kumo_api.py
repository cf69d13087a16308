"""The ``kumo`` object: the policy API, assembled from what core and plugins contribute.

A Lua policy sees it as ``require 'kumo'``; a Python policy receives it as the ``kumo``
argument of ``kumo_init``. Dotted names (``dns.lookup_mx``) become namespaces. Table-style
functions accept either keyword arguments or one mapping, so both of these work::

    kumo.define_spool(name="data", path="/var/spool/kumo/data", kind="RocksDB")
    kumo.define_spool({"name": "data", "path": "/var/spool/kumo/data", "kind": "RocksDB"})
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

from kumocore.policy.policyfn import takes_table


class _TableCall:
    """Adapts a table-style function to both ``fn(key=v)`` and ``fn({"key": v})``."""

    def __init__(self, fn: Callable[..., Any], name: str) -> None:
        self.fn = fn
        self.__name__ = name
        self.__doc__ = fn.__doc__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args:
            if len(args) != 1 or not isinstance(args[0], Mapping) or kwargs:
                raise TypeError(f"kumo.{self.__name__} takes one table of options")
            kwargs = dict(args[0])
        return self.fn(**kwargs)

    def __repr__(self) -> str:
        return f"<kumo.{self.__name__}>"


class KumoNamespace:
    """A namespace of policy functions (``kumo`` itself, ``kumo.dns``, ``kumo.dkim``...)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._members: dict[str, Any] = {}

    def _add(self, name: str, value: Any) -> None:
        self._members[name] = value

    def __getattr__(self, name: str) -> Any:
        members = self.__dict__.get("_members", {})
        if name in members:
            return members[name]
        hint = difflib.get_close_matches(name, list(members), n=1)
        suggestion = f"; did you mean {self._path}.{hint[0]}?" if hint else ""
        raise AttributeError(f"{self._path}.{name} does not exist{suggestion}")

    def __dir__(self) -> list[str]:
        return sorted(self._members)

    def __repr__(self) -> str:
        return f"<{self._path}: {', '.join(sorted(self._members))}>"


class Kumo(KumoNamespace):
    """The root ``kumo`` namespace. ``functions`` keeps the flat name → callable map."""

    def __init__(self, functions: Mapping[str, Callable[..., Any]]) -> None:
        super().__init__("kumo")
        self.functions: dict[str, Callable[..., Any]] = dict(functions)
        for dotted, fn in sorted(self.functions.items()):
            self._install(dotted, fn)

    def _install(self, dotted: str, fn: Callable[..., Any]) -> None:
        *parents, leaf = dotted.split(".")
        namespace: KumoNamespace = self
        for index, part in enumerate(parents):
            child = namespace._members.get(part)
            if not isinstance(child, KumoNamespace):
                child = KumoNamespace(".".join(["kumo", *parents[: index + 1]]))
                namespace._add(part, child)
            namespace = child
        namespace._add(leaf, _TableCall(fn, dotted) if takes_table(fn) else fn)

    def names(self) -> list[str]:
        """Every contributed function name, dotted, sorted."""
        return sorted(self.functions)
