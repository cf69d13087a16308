"""Option converters whose ``to_dict`` form is KumoMTA's serde form of the config.

KumoMTA hands a queue, egress path, pool or source configuration to a policy
(``kumo.invoke_get_*``), to the admin API (``queue_config``, ``path_config``) and to its
TOML formatters by serialising its Rust struct, so the egress and queue configs write
their values in the same shape (crates/duration-serde, crates/throttle,
crates/cidr-map):

* a duration is humantime's text: ``60 s`` is ``"1m"``, ``7 days`` is ``"7days"``,
  ``1.5 s`` is ``"1s 500ms"`` (a number of seconds is what ``to_dict`` wrote before);
* a connection limit is the struct ``{limit = 32, force_local = false}``;
* a CIDR list is the set as KumoMTA's radix tree holds it: IPv4 before IPv6, in address
  order, a network inside another one dropped and two halves merged into their whole
  (the default ``prohibited_hosts`` ``::`` and ``::1`` are ``::/127``), a single host
  without its ``/32`` or ``/128`` (a CidrSet equals another holding the same addresses,
  so what ``to_dict`` writes loads back equal).

Every form written here loads back (KumoMTA accepts them too), so
``from_options(x.to_dict()) == x`` still holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kumocore.config.cidr import CidrSet
from kumocore.config.conv import Conv, Path, check_keys
from kumocore.config.converters import CIDRS as _CIDRS
from kumocore.config.converters import LIMIT as _LIMIT
from kumocore.config.duration import MAX_DURATION, duration_seconds, humantime
from kumocore.errors import ConfigError
from kumocore.throttle.spec import LimitSpec

__all__ = ["CIDR_SET", "DURATION", "LIMIT", "cidr_list", "humantime_seconds"]

_NANOS = 1_000_000_000

# humantime's own units beyond the ones every kumocore duration takes: what it writes
# (``1month 2days``, ``250us``) must load back. Its month is 30.44 days, its year 365.25.
_HUMANTIME_ONLY = {
    "ns": 1e-9, "nsec": 1e-9, "us": 1e-6, "usec": 1e-6,
    "month": 2_630_016.0, "months": 2_630_016.0, "year": 31_557_600.0, "years": 31_557_600.0,
}  # fmt: skip
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*")


def humantime_seconds(seconds: float) -> str:
    """``seconds`` as KumoMTA serialises a duration (humantime, to the nanosecond)."""
    return humantime(round(seconds * _NANOS))


def _humantime_parts(text: str) -> float:
    total, pos = 0.0, 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            raise ValueError("not a duration")
        unit = match.group(2)
        size = _HUMANTIME_ONLY.get(unit.lower())
        size = size if size is not None else duration_seconds(f"1{unit}")
        total += float(match.group(1)) * size
        pos = match.end()
    if pos == 0 or not total <= MAX_DURATION:
        raise ValueError("not a duration")
    return total


def _load_duration(value: Any, path: Path) -> float:
    try:
        return duration_seconds(value)
    except ValueError as exc:
        if isinstance(value, str):
            try:
                return _humantime_parts(value)
            except ValueError:
                pass
        raise path.invalid(str(exc), value) from None


DURATION = Conv(_load_duration, dump=humantime_seconds)


def _load_limit(value: Any, path: Path) -> LimitSpec:
    # KumoMTA's LimitSpec also deserialises from the struct it serialises to.
    if not isinstance(value, Mapping):
        spec: LimitSpec = _LIMIT.load(value, path)
        return spec
    check_keys(value, ("limit", "force_local"), path)
    limit, force_local = value.get("limit"), value.get("force_local", False)
    if not isinstance(force_local, bool):
        raise path.child("force_local").invalid("expected true or false", force_local)
    if isinstance(limit, float) and limit.is_integer():
        limit = int(limit)  # Lua may hand a whole number over as a float
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise path.child("limit").invalid("expected a whole number", limit)
    try:
        return LimitSpec(limit, force_local)
    except (ValueError, ConfigError) as exc:
        raise path.child("limit").invalid(str(exc), limit) from None


LIMIT = Conv(_load_limit, dump=lambda spec: {"limit": spec.limit, "force_local": spec.force_local})


def cidr_list(cidrs: CidrSet) -> list[str]:
    """``cidrs`` as KumoMTA serialises a CidrSet (see the module docstring)."""
    return [str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)
            for net in cidrs.collapsed()]  # fmt: skip


CIDR_SET = Conv(_CIDRS.load, dump=cidr_list)
