"""The rest of KumoMTA's ``kumo`` module: data files, strings, regexes, maps, digests, time,
memoize and configuration epochs.

These are plain ``kumo.*`` functions, contributed by the Lua policy plugin through
``kumo_register_policy_functions``, so Python policies get them under the same names
(``kumo.serde.toml_load(path)``, ``kumo.memoize(fn, {...})``). A few need the Lua stack and
are replaced for Lua policies by ``stdlib.lua`` (``memoize``, ``traceback``,
``validation_failed``'s file:line, ``get_event_registrars``).

:class:`LuaStdlib` owns the state those functions share within one kumocore process: the
configuration epoch and its file monitor, the named memoize caches, the glob cache.

Owns those plain functions and their shared state. It does not own the ``kumo.*`` functions
that act on the node (spools, queues, listeners), which core contributes.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from kumocore_lua_policy.stdlib.clock import clock_functions
from kumocore_lua_policy.stdlib.codec import digest_functions, encode_functions
from kumocore_lua_policy.stdlib.counter_series import CounterSeriesRegistry
from kumocore_lua_policy.stdlib.crypto import crypto_functions
from kumocore_lua_policy.stdlib.epoch import ConfigEpoch, ConfigMonitor
from kumocore_lua_policy.stdlib.fs import fs_functions
from kumocore_lua_policy.stdlib.fs_open import fs_open_functions
from kumocore_lua_policy.stdlib.http_sigv4 import install as install_http_sigv4
from kumocore_lua_policy.stdlib.jsonl import jsonl_functions
from kumocore_lua_policy.stdlib.maps import map_functions
from kumocore_lua_policy.stdlib.memo import MemoRegistry
from kumocore_lua_policy.stdlib.memory import memory_functions
from kumocore_lua_policy.stdlib.mimepart import mimepart_functions
from kumocore_lua_policy.stdlib.mpsc import MpscRegistry
from kumocore_lua_policy.stdlib.plumbing import Accounting, GlobCache, plumbing_functions
from kumocore_lua_policy.stdlib.regex import regex_functions
from kumocore_lua_policy.stdlib.reverse_dns import reverse_dns_functions
from kumocore_lua_policy.stdlib.serde import serde_functions
from kumocore_lua_policy.stdlib.sigv4 import sigv4_functions
from kumocore_lua_policy.stdlib.templates import template_functions
from kumocore_lua_policy.stdlib.text import string_functions
from kumocore_lua_policy.stdlib.urls import url_functions
from kumocore_lua_policy.stdlib.uuids import uuid_functions
from kumocore_lua_policy.stdlib.version import version_functions

__all__ = ["ConfigEpoch", "ConfigMonitor", "LuaStdlib", "MemoRegistry"]


def python_traceback(level: int = 1) -> list[dict[str, Any]]:
    """``kumo.traceback(level)`` for Python policies: the caller's stack, innermost first,
    with the field names KumoMTA uses for Lua frames (``short_src``, ``curr_line``...)."""
    frames = traceback.extract_stack()[:-1]
    out = []
    for frame in reversed(frames[: max(0, len(frames) - max(0, int(level) - 1))]):
        out.append(
            {
                "event": "Normal",
                "name": frame.name,
                "name_what": None,
                "source": frame.filename,
                "short_src": frame.filename,
                "line_defined": None,
                "last_line_defined": None,
                "what": "Python",
                "curr_line": frame.lineno,
                "is_tail_call": False,
            }
        )
    return out


class LuaStdlib:
    """The shared state of one process's ``kumo`` standard library."""

    def __init__(self, monitor_interval: float = 2.0) -> None:
        self.epoch = ConfigEpoch()
        self.monitor = ConfigMonitor(self.epoch, interval=monitor_interval)
        self.memo = MemoRegistry(self.epoch)
        self.globs = GlobCache()
        self.accounting = Accounting()
        self.counter_series = CounterSeriesRegistry()
        self.mpsc = MpscRegistry()

    def functions(self) -> dict[str, Callable[..., Any]]:
        functions: dict[str, Callable[..., Any]] = {}
        for group in (
            serde_functions(),
            string_functions(),
            regex_functions(),
            map_functions(),
            digest_functions(),
            encode_functions(),
            clock_functions(),
            uuid_functions(),
            plumbing_functions(self.epoch, self.monitor, self.globs, self.accounting),
            reverse_dns_functions(),
            url_functions(),
            fs_functions(),
            template_functions(),
            fs_open_functions(),
            version_functions(),
            mimepart_functions(),
            self.counter_series.functions(),
            crypto_functions(),
            sigv4_functions(),
            memory_functions(),
            jsonl_functions(),
            self.mpsc.functions(),
        ):
            functions.update(group)
        functions["memoize"] = self.memo.memoize
        functions["traceback"] = python_traceback
        install_http_sigv4()  # request:aws_sign_v4 on kumo.http requests
        return functions
