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
* ``max_source_selection_rate``: always null here (see below).

Each ceiling is ``{value, source, display}``: ``value`` the count or events per second
(a float), ``source`` ``{"kind": "primary"}``, ``{"kind": "additional", "name": ...}`` or
``{"kind": "reconnect_cycling"}``, ``display`` the term in the operator's own units
(``10000/h``, not ``2.78/s``; a ``local:`` or ``max_burst`` part as written). An axis
nothing limits is ``null`` (unlimited), as KumoMTA's JSON writes it.

``resolve-egress-path`` also folds the scheduled queue's ``max_message_rate`` into the
message-rate axis (:func:`fold_queue_rate`; source ``{"kind": "other", "name":
"scheduled queue max_message_rate"}``), as KumoMTA does there and only there.

KumoMTA also counts ``source_selection_rate``, which kumocore does not apply (it is
refused at load unless ``--allow-unsupported``, which then ignores it): a ceiling that
does not hold here, so ``max_source_selection_rate`` stays null. For every configuration
kumocore applies, the answer is KumoMTA's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kumocore.throttle.spec import ThrottleSpec

if TYPE_CHECKING:
    from kumocore.config import EgressPathConfig, QueueConfig

__all__ = ["Ceiling", "fold_queue_rate", "path_constraints", "render_ceilings"]

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


def path_constraints(config: EgressPathConfig) -> dict[str, Any]:
    """``EffectiveConstraints`` of ``config`` as KumoMTA's JSON (see the module docstring)."""
    message_rate, declared = _message_rate(config)
    connection_rate = config.max_connection_rate
    connection_ceiling = _rate(connection_rate, _PRIMARY) if connection_rate else None
    return {
        "max_concurrent_dispatchers": _concurrency(config).to_json(),
        "max_message_rate": message_rate.to_json() if message_rate is not None else None,
        "max_message_rate_declared": declared,
        "max_connection_rate": connection_ceiling.to_json() if connection_ceiling else None,
        "max_source_selection_rate": None,
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
