"""How ``kumo.json_encode`` (and ``kumo.serde.*_encode``) write kumocore's own objects.

KumoMTA serializes its userdata (a listener domain, an egress source) through serde, so a
policy can ``kumo.json_encode(kumo.make_listener_domain{...})``; orjson handles dataclasses
itself, and this ``default`` hook covers the rest: sets of networks and other iterables as
lists, enums as their value, other objects as their public fields, else their string.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any


def jsonable(value: Any) -> Any:
    """orjson's ``default``: a JSON-friendly stand-in for ``value``."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        return list(value)
    fields = {k: v for k, v in getattr(value, "__dict__", {}).items() if not k.startswith("_")}
    return fields or str(value)
