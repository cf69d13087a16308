"""``kumocore queue list``: one scheduled queue's messages as a table (like ``mailq``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kumocore.admin.summary import format_age


def format_queue_list(view: dict[str, Any]) -> str:
    """The table printed by ``kumocore queue list`` for an inspect-sched-q answer."""
    now = datetime.fromisoformat(view["now"]) if view.get("now") else datetime.now(UTC)
    rows = [["ID", "AGE", "ATTEMPTS", "NEXT ATTEMPT", "SENDER", "RECIPIENT"]]
    for entry in view.get("messages", []):
        message = entry["message"]
        due = message.get("due") or "in delivery"
        age = (now - datetime.fromisoformat(message["created"])).total_seconds()
        rows.append([entry["id"], format_age(age), str(message["num_attempts"]), due,
                     message["sender"] or "<>", _recipients(message["recipient"])])  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in rows]  # fmt: skip
    shown = len(rows) - 1
    lines.append(f"{view['queue_name']}: {view['num_scheduled']} waiting, {shown} shown")
    return "\n".join(lines)


def _recipients(value: str | list[str]) -> str:
    """A batch's recipients on one line (the API gives a list for several)."""
    return value if isinstance(value, str) else ",".join(value)
