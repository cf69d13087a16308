"""``kumocore queue list``: one scheduled queue's messages as a table (like ``mailq``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def _age(created: str, now: datetime) -> str:
    """``1d02h``, ``3h05m``, ``4m07s`` or ``9s``: two units are enough to read a queue."""
    seconds = max(int((now - datetime.fromisoformat(created)).total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def format_queue_list(view: dict[str, Any]) -> str:
    """The table printed by ``kumocore queue list`` for an inspect-sched-q answer."""
    now = datetime.fromisoformat(view["now"]) if view.get("now") else datetime.now(UTC)
    rows = [["ID", "AGE", "ATTEMPTS", "NEXT ATTEMPT", "SENDER", "RECIPIENT"]]
    for entry in view.get("messages", []):
        message = entry["message"]
        due = message.get("due") or "in delivery"
        rows.append([entry["id"], _age(message["created"], now), str(message["num_attempts"]),
                     due, message["sender"] or "<>", message["recipient"]])  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in rows]  # fmt: skip
    shown = len(rows) - 1
    lines.append(f"{view['queue_name']}: {view['num_scheduled']} waiting, {shown} shown")
    return "\n".join(lines)
