"""KumoMTA's ``EffectiveConstraints``: the steady-state throughput ceilings an egress path
configuration implies, each tagged with the option that sets it.

``constraints`` of ``resolve-egress-path`` and ``inspect-ready-q``. Four axes, as KumoMTA
derives them (crates/kumo-api-types/src/egress_path.rs):

* ``max_concurrent_dispatchers``: the smallest of ``connection_limit`` and each of
  ``additional_connection_limits`` (a tie keeps the earlier one: the primary first);
* ``max_message_rate``: the lowest per-second rate of ``max_message_rate``, each of
  ``additional_message_rate_throttles`` and, with ``max_connection_rate`` set, the
  *reconnect cycling* ceiling ``max_deliveries_per_connection`` times ``max_connection_rate``
  (no connection sends more than that many messages, and no more connections open than
  that rate). When a term other than ``max_message_rate`` wins although it is set,
  ``max_message_rate_declared`` names it, the declared rate being out of reach;
* ``max_connection_rate``: ``max_connection_rate`` itself;
* ``max_source_selection_rate``: the lowest per-second rate of ``source_selection_rate``
  and each of ``additional_source_selection_rates`` (a tie keeps the earlier one: the
  primary first). It bounds how often the pool's rotation picks this path's source
  (kumocore.queue.source_selection), not the path's own throughput; an additional rate
  may be a budget several paths share, so the ceiling is the most this path can get.

Each ceiling is ``{value, source, display}``: ``value`` the count or events per second
(a float), ``source`` ``{"kind": "primary"}``, ``{"kind": "additional", "name": ...}`` or
``{"kind": "reconnect_cycling"}``, ``display`` the term in the operator's own units
(``10000/h``, not ``2.78/s``; a ``local:`` or ``max_burst`` part as written). An axis
nothing limits is ``null`` (unlimited), as KumoMTA's JSON writes it.

The policy functions ``kumo.compute_queue_config_constraints`` and
``kumo.compute_egress_path_config_constraints(path, additional)`` use
:func:`queue_constraints`, :func:`merge_constraints` and :func:`checked_constraints`
(KumoMTA's ``QueueConfig::compute_constraints`` and ``EffectiveConstraints::merge``).

``resolve-egress-path`` also folds the scheduled queue's ``max_message_rate`` into the
message-rate axis (:func:`fold_queue_rate`; source ``{"kind": "other", "name":
"scheduled queue max_message_rate"}``), as KumoMTA does there and only there.

For every configuration, the answer is KumoMTA's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kumocore.throttle.spec import ThrottleSpec

if TYPE_CHECKING:
    from kumocore.config import EgressPathConfig, QueueConfig

__all__ = [
    "Ceiling",
    "checked_constraints",
    "fold_queue_rate",
    "merge_constraints",
    "path_constraints",
    "queue_constraints",
    "render_ceilings",
]

#: The largest count KumoMTA's ``u64`` arithmetic reaches (``saturating_mul``).
_U64_MAX = 2**64 - 1
_LABEL_WIDTH = 24
#: KumoMTA writes the reconnect cycling product with a multiplication sign.
TIMES = "\N{MULTIPLICATION SIGN}"


@dataclass(frozen=True, slots=True)
class Ceiling:
    """One axis: its value (count or events/s), the term that set it, its display."""

    value: float
    source: dict[str, str]
    display: str

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "source": dict(self.source), "display": self.display}


_PRIMARY = {"kind": "primary"}


def _additional(name: str) -> dict[str, str]:
    return {"kind": "additional", "name": name}


def _rate(spec: ThrottleSpec, source: dict[str, str]) -> Ceiling:
    # Each operand a float first, as KumoMTA's ``as f64``: the same rounding past 2**53.
    return Ceiling(float(spec.limit) / float(spec.period), source, str(spec))


def _lowest(candidates: list[Ceiling]) -> Ceiling | None:
    # min() keeps the first of equal values, as KumoMTA's min_by does.
    return min(candidates, key=lambda c: c.value) if candidates else None


def _concurrency(config: EgressPathConfig) -> Ceiling:
    # The bare count: KumoMTA shows the limit without its ``local:`` prefix.
    best = Ceiling(float(config.connection_limit.limit), _PRIMARY,
                   str(config.connection_limit.limit))  # fmt: skip
    for name, spec in config.additional_connection_limits.items():
        if spec.limit < best.value:
            best = Ceiling(float(spec.limit), _additional(name), str(spec.limit))
    return best


def _reconnect_cycling(config: EgressPathConfig, spec: ThrottleSpec) -> Ceiling:
    k = config.max_deliveries_per_connection
    total = ThrottleSpec(min(k * spec.limit, _U64_MAX), spec.period)
    value = float(spec.limit) / float(spec.period) * float(k)
    return Ceiling(value, {"kind": "reconnect_cycling"}, f"{k} {TIMES} {spec} = {total}")


def _message_rate(config: EgressPathConfig) -> tuple[Ceiling | None, str | None]:
    """The message-rate ceiling and, when it is not ``max_message_rate`` although that is
    set, the declared rate (out of reach)."""
    candidates: list[Ceiling] = []
    declared = config.max_message_rate
    if declared is not None:
        candidates.append(_rate(declared, _PRIMARY))
    for name, spec in config.additional_message_rate_throttles.items():
        candidates.append(_rate(spec, _additional(name)))
    if config.max_connection_rate is not None:
        candidates.append(_reconnect_cycling(config, config.max_connection_rate))
    best = _lowest(candidates)
    if best is not None and declared is not None and best.source != _PRIMARY:
        return best, str(declared)
    return best, None


def _selection_rate(config: EgressPathConfig) -> Ceiling | None:
    candidates: list[Ceiling] = []
    if config.source_selection_rate is not None:
        candidates.append(_rate(config.source_selection_rate, _PRIMARY))
    for name, spec in config.additional_source_selection_rates.items():
        candidates.append(_rate(spec, _additional(name)))
    return _lowest(candidates)


def path_constraints(config: EgressPathConfig) -> dict[str, Any]:
    """``EffectiveConstraints`` of ``config`` as KumoMTA's JSON (see the module docstring)."""
    message_rate, declared = _message_rate(config)
    connection_rate = config.max_connection_rate
    connection_ceiling = _rate(connection_rate, _PRIMARY) if connection_rate else None
    selection = _selection_rate(config)
    return {
        "max_concurrent_dispatchers": _concurrency(config).to_json(),
        "max_message_rate": message_rate.to_json() if message_rate is not None else None,
        "max_message_rate_declared": declared,
        "max_connection_rate": connection_ceiling.to_json() if connection_ceiling else None,
        "max_source_selection_rate": selection.to_json() if selection is not None else None,
    }


_QUEUE_RATE = {"kind": "other", "name": "scheduled queue max_message_rate"}


def fold_queue_rate(constraints: dict[str, Any], queue_config: QueueConfig) -> dict[str, Any]:
    """``constraints`` with the scheduled queue's ``max_message_rate`` as one more
    message-rate term (KumoMTA's ``EffectiveConstraints::merge`` of the queue's
    constraints). When it binds, a ``max_message_rate`` of the path it beat is declared
    out of reach. Not counted while kumocore does not apply the option."""
    spec = queue_config.max_message_rate
    if spec is None or "max_message_rate" in type(queue_config).unsupported_options:
        return constraints
    ceiling = _rate(spec, _QUEUE_RATE)
    current = constraints["max_message_rate"]
    if current is not None and not ceiling.value < current["value"]:
        return constraints  # a tie keeps the path's term, as KumoMTA's merge does
    declared = constraints["max_message_rate_declared"]
    if current is not None and current["source"] == _PRIMARY:
        declared = current["display"]
    return {**constraints, "max_message_rate": ceiling.to_json(),
            "max_message_rate_declared": declared}  # fmt: skip


# ---------------------------------------------------------------------- policy functions
# ``kumo.compute_queue_config_constraints`` and the ``additional`` argument of
# ``kumo.compute_egress_path_config_constraints`` (KumoMTA's QueueConfig::compute_constraints
# and EffectiveConstraints::merge), for constraints tables a policy hands back.

#: The queue config sets no concurrency: an open ceiling that loses every comparison.
_OPEN_DISPATCHERS = Ceiling(float("inf"), {"kind": "other", "name": "queue config"}, "\u221e")


def queue_constraints(queue_config: QueueConfig) -> dict[str, Any]:
    """The ceilings a scheduled queue's configuration implies: its ``max_message_rate``
    (source ``other``, ``scheduled queue max_message_rate``), every other axis open."""
    spec = queue_config.max_message_rate
    rate = _rate(spec, _QUEUE_RATE) if spec is not None else None
    return {
        "max_concurrent_dispatchers": _OPEN_DISPATCHERS.to_json(),
        "max_message_rate": rate.to_json() if rate is not None else None,
        "max_message_rate_declared": None,
        "max_connection_rate": None,
        "max_source_selection_rate": None,
    }


def _lower(current: dict[str, Any] | None, other: dict[str, Any] | None) -> Any:
    # Strictly lower wins: a tie keeps the current term, as KumoMTA's merge does.
    if other is not None and (current is None or other["value"] < current["value"]):
        return other
    return current


def merge_constraints(constraints: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """``constraints`` with each axis of ``other`` that is lower taking its place. When the
    message-rate axis then comes from a term other than the primary ``max_message_rate``,
    the rate that was declared is kept as out of reach."""
    current = constraints["max_message_rate"]
    declared = constraints["max_message_rate_declared"]
    if current is not None and current["source"] == _PRIMARY:
        declared = current["display"]
    merged = {key: _lower(constraints[key], other[key]) for key in _AXIS_KEYS}
    rate = merged["max_message_rate"]
    if rate is not None and rate["source"] != _PRIMARY and declared is not None:
        merged["max_message_rate_declared"] = declared
    else:
        merged["max_message_rate_declared"] = constraints["max_message_rate_declared"]
    return merged


_AXIS_KEYS = ("max_concurrent_dispatchers", "max_message_rate", "max_connection_rate",
              "max_source_selection_rate")  # fmt: skip
_SOURCE_KINDS = {"primary": False, "additional": True, "reconnect_cycling": False, "other": True}


def _checked_ceiling(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{key}: expected a table with value, source and display")
    number, source, display = value.get("value"), value.get("source"), value.get("display")
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise ValueError(f"{key}.value: expected a number, got {number!r}")
    source = source if isinstance(source, dict) else {}
    kind = source.get("kind")
    if kind not in _SOURCE_KINDS:
        raise ValueError(f"{key}.source: expected {{kind = ...}} with kind one of "
                         f"{', '.join(_SOURCE_KINDS)}, got {value.get('source')!r}")  # fmt: skip
    name = source.get("name")
    if _SOURCE_KINDS[kind] and not isinstance(name, str):
        raise ValueError(f"{key}.source: kind {kind!r} needs a name")
    if not isinstance(display, str):
        raise ValueError(f"{key}.display: expected a string, got {display!r}")
    named = {"name": str(name)} if _SOURCE_KINDS[kind] else {}
    return Ceiling(float(number), {"kind": kind, **named}, display).to_json()


def checked_constraints(table: Any) -> dict[str, Any]:
    """A constraints table a policy passed back (as these functions return it), checked
    and in the same shape; ValueError naming the field that is wrong. Only
    ``max_concurrent_dispatchers`` is required; an absent axis is unlimited."""
    if not isinstance(table, dict):
        raise ValueError("expected a constraints table")
    if table.get("max_concurrent_dispatchers") is None:
        raise ValueError("missing field `max_concurrent_dispatchers`")
    checked: dict[str, Any] = {
        key: None if table.get(key) is None else _checked_ceiling(table[key], key)
        for key in _AXIS_KEYS
    }
    declared = table.get("max_message_rate_declared")
    if declared is not None and not isinstance(declared, str):
        raise ValueError(f"max_message_rate_declared: expected a string, got {declared!r}")
    checked["max_message_rate_declared"] = declared
    return checked


# ---------------------------------------------------------------------- text (kcli's)
_AXES = (
    ("max_concurrent_dispatchers", "concurrent dispatchers:", "connection_limit"),
    ("max_message_rate", "message rate:", "max_message_rate"),
    ("max_connection_rate", "connection rate:", "max_connection_rate"),
    ("max_source_selection_rate", "source selection rate:", "source_selection_rate"),
)


def _source_text(source: dict[str, Any], primary: str) -> str:
    kind = source.get("kind")
    if kind == "primary":
        return primary
    if kind == "reconnect_cycling":
        return f"max_deliveries_per_connection {TIMES} max_connection_rate"
    return str(source.get("name", kind))


def render_ceilings(constraints: dict[str, Any]) -> str:
    """The ``ceilings:`` block kcli prints for ``constraints`` (JSON as answered); an
    unlimited axis is not listed."""
    lines = ["ceilings:"]
    for key, label, primary in _AXES:
        ceiling = constraints.get(key)
        if ceiling is None:
            continue
        lines.append(f"  {label:<{_LABEL_WIDTH}}{ceiling['display']}")
        lines.append(f"    source: {_source_text(ceiling['source'], primary)}")
        declared = constraints.get("max_message_rate_declared")
        if key == "max_message_rate" and declared is not None:
            lines.append(f"    declared: max_message_rate = {declared} ← effectively unreachable")
    return "\n".join(lines) + "\n"
