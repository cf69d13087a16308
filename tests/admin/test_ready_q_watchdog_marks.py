"""``kumocore inspect-ready-q --connections`` marks connections as kcli does against the
answer's ``state.watchdog_threshold``: ``STUCK`` at the threshold, ``STALL?`` from three
quarters of it, nothing below (or when the answer has no threshold)."""

from __future__ import annotations

from typing import Any

from kumocore.admin.ready_q_text import render_inspect


def _connection(session: str, started_at: str, in_phase: str) -> dict[str, Any]:
    return {"session_id": session, "started_at": started_at, "age": "2m",
            "phase": "DeliveringMessage", "detail": "lua: send",
            "time_in_current_phase": in_phase, "messages_delivered": 0,
            "messages_transfailed": 0, "messages_failed": 0,
            "overall_rate_per_sec": 0.0}  # fmt: skip


def _view(threshold: str | None) -> dict[str, Any]:
    state: dict[str, Any] = {"connection_count": 3, "ready_count": 0}
    if threshold is not None:
        state["watchdog_threshold"] = threshold
    return {"queue_name": "unspecified->wedge.test@lua:make.wedge", "state": state,
            "dispatchers": [_connection("a", "2026-01-01T00:00:01Z", "1m 1s"),
                            _connection("b", "2026-01-01T00:00:02Z", "45s 3ms"),
                            _connection("c", "2026-01-01T00:00:03Z", "44s 999ms 1us")]}  # fmt: skip


def _rows(text: str) -> dict[str, str]:
    """The table rows, by session id."""
    rows = [line for line in text.splitlines() if line.startswith("  ") and line.strip()]
    return {row.split()[0]: row for row in rows if row.split()[0] in ("a", "b", "c")}


def test_connections_past_the_threshold_are_stuck_and_near_it_stalled() -> None:
    text = render_inspect(_view("1m"), connections=True, config=False, sched_q=False)
    assert "\nwatchdog threshold: 1m\n" in text
    rows = _rows(text)
    assert rows["a"].endswith("\N{WARNING SIGN} STUCK")
    assert rows["b"].endswith("\N{WARNING SIGN} STALL?")  # 45 s: three quarters of 1m
    assert rows["c"].endswith("/s")  # just below three quarters


def test_without_a_threshold_nothing_is_marked() -> None:
    text = render_inspect(_view(None), connections=True, config=False, sched_q=False)
    assert "watchdog" not in text and "\N{WARNING SIGN}" not in text
    assert all(row.endswith("/s") for row in _rows(text).values())
