"""Small ``kumo.*`` functions KumoMTA's helper modules call: globbing, epochs, accounting.

``kumo.glob`` caches its result for ``ttl_seconds`` (default 60), as KumoMTA documents;
``kumo.uncached_glob`` and ``kumo.fs.glob``/``kumo.fs.uncached_glob`` are the same walk.
``kumo.configure_accounting_db_path`` is accepted and remembered: kumocore keeps no
accounting database yet (see docs/compatibility.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from kumocore import ConfigError, NamedLru
from kumocore_lua_policy.stdlib.arguments import string_arg
from kumocore_lua_policy.stdlib.epoch import ConfigEpoch, ConfigMonitor, glob_files


def _relative(paths: list[str], relative_to: str | None) -> list[str]:
    base = os.path.abspath(relative_to or ".")
    prefix = base.rstrip("/") + "/"
    return [p[len(prefix):] if p.startswith(prefix) else p for p in paths]


def uncached_glob(pattern: str, relative_to: str | None = None) -> list[str]:
    """Files matching ``pattern`` (``**`` recurses, ``{a,b}`` alternates), made relative to
    ``relative_to`` (default ``.``) when they are under it."""
    if not isinstance(pattern, str):
        raise ConfigError(f"kumo.glob: the pattern must be a string, got {pattern!r}")
    if relative_to is not None:
        relative_to = string_arg("kumo.glob", "RELATIVE_TO", relative_to)
    if not os.path.isabs(pattern):
        pattern = os.path.join(os.path.abspath(relative_to or "."), pattern)
    return _relative(glob_files([pattern]), relative_to)


class GlobCache:
    def __init__(self) -> None:
        # At most KumoMTA's mod_filesystem_glob_cache capacity of patterns (32 unless
        # kumo.set_lruttl_cache_capacity says otherwise).
        # Each entry is (its expiry, the files).
        self._cache: NamedLru[tuple[str, str | None], tuple[float, list[str]]] = NamedLru(
            "mod_filesystem_glob_cache", expiry=itemgetter(0))

    def glob(self, pattern: str, relative_to: str | None = None,
             ttl_seconds: float | None = None) -> list[str]:
        pattern = string_arg("kumo.glob", "PATTERN", pattern)
        if relative_to is not None:
            relative_to = string_arg("kumo.glob", "RELATIVE_TO", relative_to)
        key = (pattern, relative_to)
        ttl = 60.0 if ttl_seconds is None else float(ttl_seconds)
        now = time.monotonic()
        hit = self._cache.lookup(key, now)
        if hit is not None:
            return list(hit[1])
        result = uncached_glob(pattern, relative_to)
        self._cache[key] = (now + ttl, result)
        return list(result)


class Accounting:
    """Remembers ``configure_accounting_db_path``; kumocore writes no accounting DB yet."""

    def __init__(self) -> None:
        self.db_path = "/var/spool/kumomta/accounting.db"  # KumoMTA's documented default

    def configure(self, path: str) -> None:
        if not isinstance(path, str) or not path:
            raise ConfigError("kumo.configure_accounting_db_path takes a file name")
        self.db_path = path


def plumbing_functions(
    epoch: ConfigEpoch, monitor: ConfigMonitor, globs: GlobCache, accounting: Accounting
) -> dict[str, Callable[..., Any]]:
    return {
        "glob": globs.glob,
        "uncached_glob": uncached_glob,
        "fs.glob": globs.glob,
        "fs.uncached_glob": uncached_glob,
        "bump_config_epoch": epoch.bump,
        "set_config_monitor_globs": monitor.set_globs,
        "eval_config_monitor_globs": lambda: glob_files(monitor.globs),
        "policy_extras.monitor_files": monitor.add_files,
        "configure_accounting_db_path": accounting.configure,
    }
