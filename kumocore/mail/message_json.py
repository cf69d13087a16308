"""Message meta values that survive a JSON round trip, and the fields of a spooled meta
record (:meth:`kumocore.mail.message.Message.meta_bytes` / ``from_spool``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from kumocore.policy.policyfn import lua_type_name

__all__ = ["SpoolRecordError", "jsonable", "record_field"]


class SpoolRecordError(ValueError):
    """A spooled meta record cannot be turned back into a Message; names the message id."""

    def __init__(self, message_id: str, reason: str) -> None:
        super().__init__(f"corrupt spool record for message {message_id}: {reason}")
        self.id = message_id
        self.reason = reason


#: The types of nearly every meta value, which :func:`jsonable` returns unchanged: a value
#: of exactly one of them skips the call (a set lookup instead of the ``isinstance`` test).
_AS_IS = frozenset({str, bool, type(None)})


def jsonable(value: Any, where: str) -> Any:
    """``value`` if it survives a JSON round trip unchanged (tuples become lists)."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int) and -(2**63) <= value < 2**64:
        return value
    if isinstance(value, int):
        raise TypeError(f"{where}: integer {value} does not fit in 64 bits")
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        raise TypeError(f"{where}: {value} is not representable in JSON")
    if isinstance(value, (list, tuple)):
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: object keys must be strings, got {k!r}")
            # Most meta values are strings: kept as they are, without a path for an error
            # message that cannot happen (every message copies its connection's meta).
            out[k] = v if type(v) in _AS_IS else jsonable(v, f"{where}.{k}")
        return out
    # In a policy's terms: a Lua function, a binary string (Lua's non-UTF-8 strings).
    kind = "binary string (not UTF-8)" if isinstance(value, bytes) else lua_type_name(value)
    raise TypeError(f"{where}: {kind} is not JSON-serialisable")


def record_field(rec: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in rec:
        raise KeyError(f"missing field {key!r}")
    value = rec[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"field {key!r} has the wrong type ({type(value).__name__})")
    return value
