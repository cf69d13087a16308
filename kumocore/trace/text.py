"""The text kcli prints for a trace, one line per line of the conversation.

Each line starts with the session's key (``peer->listener`` for the listener, the session
id for the delivery client) and the time since the session was first seen; ``->`` marks
what the listener read (what the client wrote), ``<-`` what was sent back, ``===`` events
and changes of the connection meta. ``--terse`` shows a multi-line read (listener) or write
(client) by its first line and its size. Deviation from kcli: a ``Callback`` result is
printed as JSON rather than as Rust's debug text of a JSON value.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

_COLORS = {"cyan": "\x1b[36m", "green": "\x1b[32m", "red": "\x1b[31m", "normal": "\x1b[0m"}
_ESCAPES = {"\t": "\\t", "\r": "\\r", "\n": "\\n", "\\": "\\\\", "'": "\\'", '"': '\\"'}


def escape_debug(text: str) -> str:
    """Rust's ``str::escape_debug``: control characters and quotes escaped."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif not char.isprintable():
            out.append(f"\\u{{{ord(char):x}}}")
        else:
            out.append(char)
    return "".join(out)


def compact(value: Any) -> str:
    """``serde_json::to_string``: JSON without spaces."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def rust_lines(text: str) -> list[str]:
    """Rust's ``str::lines``: split at LF, a CR before it dropped, no empty last line."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def duration(seconds: float) -> str:
    """A duration as Rust's ``{:.0?}`` prints one: ``3s``, ``12ms``, ``250µs``, ``80ns``."""
    for unit, scale in (("s", 1.0), ("ms", 1e3), ("µs", 1e6)):
        if seconds * scale >= 1:
            return f"{math.floor(seconds * scale + 0.5)}{unit}"  # half up, as Rust rounds
    return f"{math.floor(seconds * 1e9 + 0.5)}ns"


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _display_when(text: str) -> str:
    """chrono's ``Display`` of a UTC time: ``2026-12-06 03:03:43.123456 UTC``."""
    return text.replace("T", " ").replace("Z", " UTC")


def server_key(meta: Any) -> str:
    if not isinstance(meta, dict):
        return ""
    return f"{meta.get('received_from')}->{meta.get('received_via')}"


def client_key(meta: Any) -> str:
    return str(meta.get("id", "")) if isinstance(meta, dict) else ""


@dataclass
class _Conn:
    opened: datetime
    meta: Any = field(default_factory=dict)


@dataclass
class TraceText:
    """Turns trace events into kcli's lines; ``client`` for trace-smtp-client."""

    client: bool = False
    color: bool = False
    only_new: bool = False
    only_one: bool = False
    terse: bool = False
    done: bool = False  # --only-one: the session closed
    _conns: dict[str, _Conn] = field(default_factory=dict)
    _wanted: str | None = None

    def _c(self, name: str) -> str:
        return _COLORS[name] if self.color else ""

    def lines(self, event: dict[str, Any]) -> list[str]:
        meta = event.get("conn_meta")
        key = client_key(meta) if self.client else server_key(meta)
        if self._wanted is not None and key != self._wanted and key:
            return []
        payload = event.get("payload")
        when = _when(str(event["when"]))
        conn = self._conns.get(key)
        if conn is not None:
            delta = f"{duration(max(0.0, (when - conn.opened).total_seconds())):>5}"
        else:
            first = "BeginSession" if self.client else "Connected"
            if payload != first and self.only_new:
                return []
            if self.only_one and self._wanted is None:
                self._wanted = key
            self._conns[key] = _Conn(when)
            delta = " " * 5
        prefix = f"[{key}] {delta}"
        out = [f"{prefix} {line}" for line in self._payload(key, payload, event)]
        conn = self._conns.get(key)
        if conn is not None and conn.meta != meta:
            out += [f"{prefix} {line}" for line in _meta_diff(conn.meta, meta)]
            conn.meta = meta
        return out

    def _payload(self, key: str, payload: Any, event: dict[str, Any]) -> list[str]:
        if isinstance(payload, str):
            return self._unit(key, payload, event)
        kind, value = next(iter(payload.items()))
        cyan, green, red, normal = (self._c(n) for n in ("cyan", "green", "red", "normal"))
        if kind == "Diagnostic":
            level = value["level"]
            color = red if level == "ERROR" else normal
            return [f"=== {color}{level}: {value['message']}{normal}"]
        if kind == "Callback":
            return [_callback(value, red, normal)]
        if kind == "MessageDisposition":
            return _disposition(value)
        inbound, outbound = ("Write", "Read") if self.client else ("Read", "Write")
        if kind == f"Abbreviated{inbound}":
            word = "written" if self.client else "read"
            return [f"{green}{self._arrow(inbound)}{escape_debug(value['snippet'])}{normal}",
                    f"=== bytes {word}={value['len']}"]  # fmt: skip
        if kind == inbound:
            return self._inbound(value, green, normal)
        if kind == outbound:
            return [f"{cyan}{self._arrow(outbound)}{escape_debug(line)}{normal}"
                    for line in rust_lines(value)]  # fmt: skip
        return [f"=== {compact(payload)}"]

    def _arrow(self, kind: str) -> str:
        """kcli's markers: what the remote side sent, and what we sent."""
        if self.client:
            return "->  " if kind == "Write" else " <- "
        return " -> " if kind == "Read" else "<-  "

    def _inbound(self, data: str, green: str, normal: str) -> list[str]:
        """The listener's reads (the client's writes): ``--terse`` keeps the first line."""
        kind = "Write" if self.client else "Read"
        out = []
        for idx, line in enumerate(rust_lines(data.rstrip())):
            if idx > 0 and self.terse:
                out.append(f"=== bytes {'written' if self.client else 'read'}={len(data)}")
                break
            out.append(f"{green}{self._arrow(kind)}{escape_debug(line)}{normal}")
        return out

    def _unit(self, key: str, payload: str, event: dict[str, Any]) -> list[str]:
        if payload == "Closed":
            self._conns.pop(key, None)
            self.done = self.only_one
            return ["=== Closed"]
        if payload == ("BeginSession" if self.client else "Connected"):  # with the time
            return [f"=== {payload} {_display_when(str(event['when']))}"]
        return [f"=== {payload}"]


def _callback(value: dict[str, Any], red: str, normal: str) -> str:
    name, result, error = value.get("name"), value.get("result"), value.get("error")
    if error is not None and result is None:
        return f"=== {name}: {red}Error: {error}{normal}"
    if error is None and result is not None:
        return f"=== {name}: Ok: {compact(result)}"
    if error is None:
        return f"=== {name}: Ok"
    return f"=== {name}: Impossible success {compact(result)} and {red}error: {error}{normal}"


def _option(value: Any) -> str:
    """Rust's debug text of an ``Option<bool>``."""
    return "None" if value is None else f"Some({str(value).lower()})"


def _disposition(value: dict[str, Any]) -> list[str]:
    recipient = value.get("recipient")
    recipients = ", ".join(recipient) if isinstance(recipient, list) else str(recipient)
    out = [f"=== Message from=<{value.get('sender')}> to=<{recipients}> id={value.get('id')}",
           f"=== Message queue={value.get('queue')} relay={str(value.get('relay')).lower()} "
           f"log_arf={compact(value.get('log_arf'))} log_oob={compact(value.get('log_oob'))} "
           f"was_arf_or_oob={_option(value.get('was_arf_or_oob'))} "
           f"will_enqueue={_option(value.get('will_enqueue'))}"]  # fmt: skip
    meta = value.get("meta")
    if isinstance(meta, dict):
        out += [f"=== Message meta: {k}={compact(v)}" for k, v in meta.items()]
    else:
        out.append(f"=== Message meta: {compact(meta)}")
    return out


def _meta_diff(prior: Any, new: Any) -> list[str]:
    if not (isinstance(prior, dict) and isinstance(new, dict)):
        return [f"=== conn_meta updated to {compact(new)}"]
    out = []
    for key, value in prior.items():
        if key not in new:
            out.append(f"=== conn_meta deleted {key}")
        elif new[key] != value:
            out.append(f"=== conn_meta {key}={compact(new[key])}")
    out += [f"=== conn_meta {key}={compact(v)}" for key, v in new.items() if key not in prior]
    return out
