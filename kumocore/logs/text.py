"""``kumocore logs ... --format text``: one readable line per log record.

``2026-12-03 15:04:05 Delivery    4f0c…  sender@a.example -> user@b.example  250 2.0.0 OK
[queue=b.example site=mx.b.example source=ip-1 peer=192.0.2.7]`` — the time (UTC), the
record type, the message id, the envelope, the response and the routing facts that are
set. Bounces add their classification. Lines that are not JSON are printed as they are.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import IO, Any

import orjson


def _when(value: Any) -> str:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value or "")[:19].replace("T", " ")


def _response(response: Any) -> str:
    if not isinstance(response, dict):
        return ""
    code = response.get("code", "")
    enhanced = response.get("enhanced_code")
    status = ""
    if isinstance(enhanced, dict):
        status = f" {enhanced.get('class')}.{enhanced.get('subject')}.{enhanced.get('detail')}"
    content = " ".join(str(response.get("content", "")).split())
    return f"{code}{status} {content}".strip()


def format_record(record: dict[str, Any]) -> str:
    facts = []
    for key, label in (("queue", "queue"), ("site", "site"), ("egress_source", "source"),
                       ("bounce_classification", "class")):  # fmt: skip
        value = record.get(key)
        if value and not (key == "bounce_classification" and value == "Uncategorized"):
            facts.append(f"{label}={value}")
    peer = record.get("peer_address")
    if isinstance(peer, dict) and peer.get("addr"):
        facts.append(f"peer={peer['addr']}")
    recipient = record.get("recipient", "")
    if isinstance(recipient, list):  # a batch's record names several
        recipient = ",".join(map(str, recipient))
    envelope = f"{record.get('sender') or '<>'} -> {recipient}"
    line = (f"{_when(record.get('timestamp'))} {record.get('type', '?'):<16} "
            f"{record.get('id', '')}  {envelope}  {_response(record.get('response'))}")  # fmt: skip
    return f"{line}  [{' '.join(facts)}]" if facts else line


class TextLines:
    """A stream that turns each JSON record line written to it into its text line."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def write(self, text: str) -> int:
        for raw in text.splitlines():
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError:
                self.out.write(raw + "\n")
                continue
            self.out.write((format_record(record) if isinstance(record, dict) else raw) + "\n")
        return len(text)

    def flush(self) -> None:
        self.out.flush()
