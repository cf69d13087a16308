"""The options of ``protocol = { custom_lua = { ... } }`` (KumoMTA's names and defaults),
checked when the queue config is made, apart from the delivery code that uses them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kumocore.config.duration import parse_duration
from kumocore.errors import ConfigError
from kumocore.throttle.spec import U64_MAX

_KEYS = frozenset({"constructor", "batch_size", "min_batch_size", "max_batch_latency"})


@dataclass(frozen=True, slots=True)
class LuaProtocol:
    """``custom_lua`` options (KumoMTA's names and defaults)."""

    constructor: str
    batch_size: int = 1
    min_batch_size: int = 1
    max_batch_latency: float = 0.0


def _count(value: Any, key: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # Lua numbers may arrive as floats
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= U64_MAX:
        raise ConfigError(f"protocol.custom_lua.{key}: expected an integer from 1 to "
                          f"{U64_MAX} (a usize in KumoMTA), got {value!r}")
    return value


def lua_options(options: Any) -> LuaProtocol:
    """The validated ``custom_lua`` table; ConfigError naming the key otherwise."""
    if not isinstance(options, Mapping):
        raise ConfigError("protocol.custom_lua: expected a table with a 'constructor'")
    for unknown in sorted(set(options) - _KEYS):
        raise ConfigError(f"protocol.custom_lua: unknown option {unknown!r} "
                          f"(known: {', '.join(sorted(_KEYS))})")
    constructor = options.get("constructor")
    if not isinstance(constructor, str) or not constructor:
        raise ConfigError("protocol.custom_lua.constructor: the name of a custom event "
                          "(e.g. 'make.webhook') is required")
    batch = _count(options.get("batch_size", 1), "batch_size")
    minimum = _count(options.get("min_batch_size") or 1, "min_batch_size")
    latency = options.get("max_batch_latency")
    seconds = 0.0 if latency is None else parse_duration(
        latency, key="protocol.custom_lua.max_batch_latency")
    return LuaProtocol(constructor, batch, min(minimum, batch), seconds)
