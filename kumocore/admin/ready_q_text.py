"""The text kcli prints for ``inspect-ready-q`` and ``resolve-egress-path``, built from
the API's JSON answers (crates/kcli/src/inspect_ready_q.rs, resolve_egress_path.rs):
the MX block, the configuration as compact TOML
(:func:`kumocore.config.toml_text.toml_encode_pretty_compact`), the ceilings block
(:func:`kumocore.config.constraints.render_ceilings`) and the ready queue's summary,
states and connection table.

What kumocore's answer leaves out is not printed (no ``egress pool`` line); a line is
printed for it when an answer has it. As kcli does, a connection whose time in its phase
reached the watchdog threshold is marked ``STUCK``, one past three quarters of it
``STALL?``.
"""

from __future__ import annotations

import re
from typing import Any

from kumocore.config.constraints import render_ceilings
from kumocore.config.toml_text import toml_encode_pretty_compact

__all__ = ["chrono_display", "render_inspect", "render_mx", "render_resolution"]


# ---------------------------------------------------------------------- MX
def render_mx(mx: dict[str, Any]) -> str:
    """KumoMTA's ``MxResolution`` block: a header with the site and its flags, then one
    ``preference  host`` line per host, lowest preference first."""
    flags = [flag for flag, on in (("synthesised", not mx.get("is_mx")),
                                   ("domain literal", mx.get("is_domain_literal")),
                                   ("dnssec verified", mx.get("is_secure"))) if on]  # fmt: skip
    lines = [f"mx (site: {mx.get('site_name', '')}{''.join(', ' + f for f in flags)}):"]
    by_preference = mx.get("by_preference") or {}
    for pref in sorted(by_preference, key=int):
        lines += [f"  {pref:>4}  {host}" for host in by_preference[pref]]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- resolve-egress-path
def render_resolution(answer: dict[str, Any]) -> str:
    """kcli's default ``resolve-egress-path`` text: names, MX, configuration, ceilings."""
    mx = answer.get("mx")
    return (
        f"domain: {answer['domain']}\nsource: {answer['source']}\n"
        f"queue:  {answer['queue_name']}\n\n"
        + (render_mx(mx) if mx is not None else "mx: <not resolved>\n")
        + "\n--- egress path config ---\n\n"
        + toml_encode_pretty_compact(answer["path_config"])
        + "\n--- effective ceilings ---\n\n"
        + render_ceilings(answer["constraints"])
    )


# ---------------------------------------------------------------------- inspect-ready-q
def chrono_display(stamp: str) -> str:
    """``2026-01-01T12:00:07.512000000Z`` as chrono shows a UTC time:
    ``2026-01-01 12:00:07.512 UTC`` (the fraction only when not zero)."""
    date, _, clock = stamp.removesuffix("Z").partition("T")
    whole, _, fraction = clock.partition(".")
    fraction = fraction.rstrip("0")
    if fraction:
        fraction = "." + fraction.ljust(3 * -(-len(fraction) // 3), "0")
    return f"{date} {whole}{fraction} UTC"


def _summary(view: dict[str, Any]) -> list[str]:
    state = view.get("state", {})
    fields = [("egress pool", view.get("egress_pool")),
              ("egress source", view.get("egress_source")),
              ("protocol", view.get("protocol")),
              ("watchdog threshold", state.get("watchdog_threshold"))]  # fmt: skip
    present = [(label, value) for label, value in fields if value is not None]
    width = max(len(label) + 1 for label, _ in present) if present else 0
    lines = [f"queue: {view['queue_name']}", ""]
    lines += [f"{label + ':':<{width}} {value}" for label, value in present]
    mx = view.get("mx")
    if mx is not None:
        lines += ["", render_mx(mx).rstrip("\n")]
    return [*lines, "", f"ready: {state.get('ready_count', 0):,}"]


def _states(state: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for key, title in (("connection_rate_throttled", "connection rate throttled"),
                       ("connection_limited", "connection limited")):  # fmt: skip
        held = state.get(key)
        if held is not None:
            since = chrono_display(held["since"])
            lines += ["", f"{title}: {held['context']}", f"  since: {since}"]
    suspended = state.get("suspended")
    if suspended is not None:
        lines += ["", f"suspended: {suspended['reason']}",
                  f"  expires in: {suspended['duration']}"]  # fmt: skip
    return lines


def _phase_label(phase: Any) -> str:
    """``Idle``; ``AcquiringLease(label)`` and ``AccumulatingBatch(have/want)`` for the
    phases that carry data."""
    if not isinstance(phase, dict):
        return str(phase)
    ((name, data),) = phase.items()
    if name == "AccumulatingBatch":
        return f"{name}({data.get('have')}/{data.get('want')})"
    return f"{name}({', '.join(str(v) for v in data.values())})"


#: humantime's units (the durations of the API's answers), in seconds.
_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
          "day": 86400.0, "days": 86400.0}  # fmt: skip


def _seconds(text: object) -> float | None:
    """A humantime duration (``4m 2s 120ms``) in seconds; None if it is not one."""
    parts = re.findall(r"(\d+)([a-z]+)", text) if isinstance(text, str) else []
    if not parts or any(unit not in _UNITS for _, unit in parts):
        return None
    return sum(int(n) * _UNITS[unit] for n, unit in parts)


def _marker(dispatcher: dict[str, Any], threshold: float | None) -> str:
    """kcli's mark of a connection that has not advanced for (most of) the threshold."""
    stalled = _seconds(dispatcher.get("time_in_current_phase"))
    if threshold is None or stalled is None:
        return ""
    if stalled >= threshold:
        return "\N{WARNING SIGN} STUCK"
    return "\N{WARNING SIGN} STALL?" if stalled >= 0.75 * threshold else ""


def _table_lines(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + " ".join(cell.rjust(w) if i in right else cell.ljust(w)
                            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
                            ).rstrip() for row in rows]  # fmt: skip


def _connections(view: dict[str, Any], table: bool) -> list[str]:
    dispatchers = sorted(view.get("dispatchers") or [], key=lambda d: d["started_at"])
    lines = ["", f"connections: {view.get('state', {}).get('connection_count', 0):,}"]
    if not table or not dispatchers:
        return lines
    threshold = _seconds(view.get("state", {}).get("watchdog_threshold"))
    rows = [["SESSION", "DELIV", "TRANS", "FAIL", "AGE", "RATE", ""]]
    rows += [[d["session_id"], f"{d['messages_delivered']:,}", f"{d['messages_transfailed']:,}",
              f"{d['messages_failed']:,}", d["age"], f"{d['overall_rate_per_sec']:.1f}/s",
              _marker(d, threshold)]
             for d in dispatchers]  # fmt: skip
    table_lines = _table_lines(rows, right={1, 2, 3, 4, 5})
    lines.append(table_lines[0])
    for line, d in zip(table_lines[1:], dispatchers, strict=True):
        lines += [line, f"  {_phase_label(d['phase'])} for {d['time_in_current_phase']}"]
        if d.get("detail"):
            lines.append(f"  {d['detail']}")
        lines.append("")
    return lines


def render_inspect(view: dict[str, Any], *, connections: bool, config: bool,
                   sched_q: bool) -> str:  # fmt: skip
    """kcli's ``inspect-ready-q`` text: summary, states, ceilings, then on request the
    scheduled queues, the connection table and the configuration."""
    lines = [*_summary(view), *_states(view.get("state", {}))]
    if "constraints" in view:
        lines += ["", render_ceilings(view["constraints"]).rstrip("\n")]
    names = view.get("scheduled_queue_names")
    if sched_q and names is not None:
        lines += ["", f"scheduled queues: {len(names)}", *(f"  {name}" for name in names)]
    lines += _connections(view, connections)
    if config:
        toml = toml_encode_pretty_compact(view.get("path_config") or {})
        lines += ["", "config:", *(f"  {line}".rstrip() for line in toml.splitlines())]
    return "\n".join(lines) + "\n"
