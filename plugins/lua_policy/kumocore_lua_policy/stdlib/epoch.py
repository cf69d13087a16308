"""Configuration epochs: what makes a changed policy or data file take effect without restart.

KumoMTA keeps a *configuration epoch*, a counter bumped when a monitored file changes (or
by ``kumo.bump_config_epoch()``); a bump invalidates ``memoize`` caches made with
``invalidate_with_epoch`` and makes new Lua states load the policy afresh.

kumocore does the same with a polling :class:`ConfigMonitor`: every ``interval`` seconds it
fingerprints (size, mtime, content hash) the files matched by the globs the policy set
with ``kumo.set_config_monitor_globs`` plus the files the Lua policy loaded, and bumps the
:class:`ConfigEpoch` when the fingerprint changes. Listeners (the Lua policy's reloader)
are called on every bump. Polling, not inotify: it works on every filesystem, costs a few
stats per interval, and also catches files that appear after start-up.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import itertools
import os
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from kumocore import ConfigError

log = structlog.get_logger("kumocore.lua.epoch")

_BRACES = re.compile(r"\{([^{}]*)\}")

#: KumoMTA's default monitored files (its documented effective default).
DEFAULT_GLOBS = ("/opt/kumomta/etc/**/*.{lua,json,toml,yaml}",)


def expand_braces(pattern: str) -> list[str]:
    """``a.{x,y}`` → ``a.x``, ``a.y`` (Python's glob has no brace alternatives)."""
    match = _BRACES.search(pattern)
    if match is None:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end():]
    return [p for alt in match.group(1).split(",") for p in expand_braces(head + alt + tail)]


def glob_files(patterns: Iterable[str]) -> list[str]:
    """The de-duplicated, sorted files matching any of ``patterns`` (``**`` recurses)."""
    found: set[str] = set()
    for pattern in patterns:
        for expanded in expand_braces(pattern):
            found.update(p for p in glob.glob(expanded, recursive=True) if os.path.isfile(p))
    return sorted(os.path.abspath(p) for p in found)


class ConfigEpoch:
    """The process's configuration epoch and who wants to hear about a change."""

    def __init__(self) -> None:
        self.value = 0
        self._listeners: list[Callable[[int], Any]] = []

    def subscribe(self, listener: Callable[[int], Any]) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[int], Any]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def bump(self) -> int:
        self.value += 1
        log.info("configuration epoch bumped", epoch=self.value)
        for listener in list(self._listeners):
            try:
                listener(self.value)
            except Exception:  # one listener's failure must not stop the others
                log.exception("configuration epoch listener failed")
        return self.value


Fingerprint = tuple[int, int, str]


def _matching(globs: Iterable[str], extra: set[str]) -> list[str]:
    return sorted(set(glob_files(globs)) | extra)

#: A file modified this recently is hashed again even if its size and mtime look unchanged:
#: two writes within one mtime tick (a few ms on some filesystems) must not be missed.
_RECENT_NS = 2_000_000_000


def _fingerprint(path: str, previous: Fingerprint | None) -> Fingerprint | None:
    """(size, mtime, content hash); the hash of an old, unchanged file is reused, so large
    stable data files are not read on every poll."""
    try:
        stat = os.stat(path)
        if (previous is not None and previous[:2] == (stat.st_size, stat.st_mtime_ns)
                and time.time_ns() - stat.st_mtime_ns > _RECENT_NS):
            return previous
        with open(path, "rb") as f:
            digest = hashlib.blake2b(f.read(), digest_size=16).hexdigest()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns, digest


class ConfigMonitor:
    """Polls the monitored files; bumps the epoch when any of them changes."""

    def __init__(self, epoch: ConfigEpoch, interval: float = 2.0) -> None:
        self.epoch = epoch
        self.interval = interval
        self.globs: list[str] = list(DEFAULT_GLOBS)
        self.extra_files: set[str] = set()
        self._last: dict[str, Fingerprint | None] | None = None
        self._task: asyncio.Task[None] | None = None

    def set_globs(self, globs: Any) -> None:
        if isinstance(globs, str) or not isinstance(globs, list | tuple) or not all(
                isinstance(g, str) for g in globs):
            raise ConfigError("kumo.set_config_monitor_globs takes an array of glob strings, "
                              f"got {globs!r}")
        self.globs = list(globs)
        self._last = None  # a new set of files: take a fresh baseline

    def add_files(self, paths: Any) -> None:
        """Watch these files too, whatever the globs (a helper's data files: an edit takes
        effect as KumoMTA's helpers make it, without the operator listing them)."""
        names = [paths] if isinstance(paths, str) else list(paths or ())
        if not all(isinstance(p, str) for p in names):
            raise ConfigError(f"kumo.policy_extras.monitor_files takes file names, got {paths!r}")
        self.extra_files.update(os.path.abspath(p) for p in names if "://" not in p)

    def files(self) -> list[str]:
        return _matching(self.globs, self.extra_files)

    def check(self) -> bool:
        """Compare with the last poll; bump the epoch (and return True) on a change."""
        if not self._poll(self.files()):
            return False
        self.epoch.bump()
        return True

    def _poll(self, files: list[str]) -> bool:
        last = self._last or {}
        current = {path: _fingerprint(path, last.get(path)) for path in files}
        previous, self._last = self._last, current
        if previous is None or previous == current:
            return False
        changed = sorted(p for p in current.keys() | previous.keys()
                         if current.get(p) != previous.get(p))
        log.info("monitored configuration changed", files=list(itertools.islice(changed, 10)))
        return True

    def start(self) -> None:
        """Start polling on the running loop (once); a baseline is taken right away."""
        if self._task is not None and not self._task.done():
            return
        self.check()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="config-monitor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                # Reading files happens off the loop; listeners run on it. The glob and
                # file lists are read here, on the loop, where they are changed.
                globs, extra = list(self.globs), set(self.extra_files)
                files = await asyncio.to_thread(_matching, globs, extra)
                if await asyncio.to_thread(self._poll, files):
                    self.epoch.bump()
            except Exception:
                log.exception("configuration monitor poll failed")
