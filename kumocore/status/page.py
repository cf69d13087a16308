"""The status page's HTML, rendered from one node status (:mod:`kumocore.status.data`).

Every table is filled in here, so the page is a readable snapshot without JavaScript;
``static/status.js`` then keeps the same tables current from the event stream and draws
the throughput chart. Every value from the node (queue names, response texts, reasons)
is escaped.
"""

from __future__ import annotations

import time
from html import escape
from typing import Any

__all__ = ["fmt_age", "fmt_bytes", "render_page"]


def fmt_age(seconds: float | None) -> str:
    """``95`` -> ``1m35s``; None -> ``""``."""
    if seconds is None:
        return ""
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def fmt_bytes(count: int | None) -> str:
    if count is None:
        return "?"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop always returns


def _rows(rows: list[list[str]], columns: int, empty: str) -> str:
    if not rows:
        return f'<tr class="empty"><td colspan="{columns}">{escape(empty)}</td></tr>'
    return "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)


#: The throughput table's rows: counter key and label (the script uses the same).
COUNTER_ROWS = (("received", "received"), ("delivered", "delivered"),
                ("transfail", "transient failures"), ("fail", "bounced"), ("expired", "expired"))


def _counters(status: dict[str, Any]) -> str:
    counters = status["counters"]
    rows = [[escape(label), f'<span class="num">{counters.get(key, 0)}</span>', ""]
            for key, label in COUNTER_ROWS]  # fmt: skip
    return _rows(rows, 3, "")


def _scheduled(status: dict[str, Any]) -> str:
    queues = status.get("queues") or {"scheduled": []}
    rows = []
    for q in queues["scheduled"]:
        until = q.get("suspended_until")
        state = f"suspended {fmt_age(until - status['time'])}" if until else ""
        rows.append([f'<span class="qname">{escape(q["name"])}</span>',
                     f'<span class="num">{q["count"]}</span>', escape(fmt_age(q["oldest_age"])),
                     escape(q["egress_pool"]), escape(state), ""])  # fmt: skip
    return _rows(rows, 6, "no scheduled queues")


def _ready(status: dict[str, Any]) -> str:
    queues = status.get("queues") or {"ready": []}
    rows = [[escape(f"{q['source']} → {q['site']}"), f'<span class="num">{q["count"]}</span>',
             f'{q["connections"]} / {q["connection_limit"]}',
             escape(f"- / {q.get('max_message_rate') or 'no limit'}"),
             escape(q.get("last_error") or "")]
            for q in queues["ready"]]  # fmt: skip
    return _rows(rows, 5, "no ready queues")


def _responses(status: dict[str, Any]) -> str:
    rows = [[escape(r["site"]), escape(r["kind"]), str(r["code"]), escape(r["enhanced_code"]),
             escape(r["text"]), f'<span class="num">{r["count"]}</span>']
            for r in status["recent"]["responses"][:25]]  # fmt: skip
    return _rows(rows, 6, "no transient failures or bounces")


def _classes(status: dict[str, Any]) -> str:
    rows = [[escape(name), f'<span class="num">{count}</span>']
            for name, count in status["recent"]["bounce_classes"].items()]  # fmt: skip
    return _rows(rows, 2, "no bounces")


def _rules(status: dict[str, Any]) -> str:
    rows = []
    for kind, rules in (("suspend", status["suspensions"]), ("bounce", status["bounces"])):
        for rule in rules:
            target = ", ".join(rule.get("queue_names") or []) or " ".join(
                f"{k}={rule[k]}" for k in ("campaign", "tenant", "domain", "routing_domain")
                if rule.get(k)) or "everything"  # fmt: skip
            rows.append([escape(kind), escape(target), escape(rule["reason"]),
                         escape(fmt_age(rule["remaining"])), ""])  # fmt: skip
    for action in status.get("automation", []):
        rows.append([escape(f"automation: {action['kind']}"), escape(_action_target(action)),
                     escape(f"{action['reason']} ({action['rule']})"),
                     escape(fmt_age(action["remaining_seconds"])), ""])  # fmt: skip
    return _rows(rows, 5, "no active suspensions, bounce rules or automation actions")


def _action_target(action: dict[str, Any]) -> str:
    """What a traffic shaping automation action holds or changes."""
    target = action.get("site") or action.get("domain") or ""
    if action.get("name"):
        target += f" {action['name']}={action.get('value')}"
    for key in ("tenant", "campaign"):
        if action.get(key):
            target += f" {key}={action[key]}"
    return target.strip()


def _node(status: dict[str, Any]) -> str:
    node = status["node"]
    facts = [("host", node["hostname"]), ("version", node["version"]),
             ("workers", str(status["workers"])), ("uptime", fmt_age(node["uptime"])),
             ("policy", node["policy_path"] or "(none)")]  # fmt: skip
    for spool in node["spools"]:
        facts.append((f"{spool['role']} spool", f"{spool['path'] or '(memory)'} — "
                      f"{fmt_bytes(spool.get('free_bytes'))} free of "
                      f"{fmt_bytes(spool.get('total_bytes'))}"))  # fmt: skip
    for sink, stats in node["log_sinks"].items():
        facts.append((f"log sink {sink}", ", ".join(f"{k} {v}" for k, v in stats.items())))
    return "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts)


def _table(table_id: str, headers: list[str], body: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return (f'<table id="{table_id}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")  # fmt: skip


def render_page(status: dict[str, Any]) -> str:
    """The whole page for ``status`` (a node status as :func:`node_status` returns it)."""
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(status["time"]))
    host = escape(status["node"]["hostname"])
    return f"""<!DOCTYPE html>
<html lang="en" class="nojs">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kumocore status — {host}</title>
<link rel="icon" href="/status/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/status/static/status.css">
<script src="/status/static/status.js" defer></script>
</head>
<body>
<header>
  <h1>kumocore <span id="host">{host}</span></h1>
  <p id="updated">snapshot of {escape(when)}</p>
  <p id="live" class="live off">static snapshot</p>
</header>
<main>
<section id="throughput-panel" class="wide">
  <h2>Throughput <small>per second, up to the last 5 minutes</small></h2>
  <div id="chart" class="chart" aria-label="throughput chart"></div>
  {_table("counters", ["counter", "total", "per second"], _counters(status))}
</section>
<section id="queues-panel" class="wide">
  <h2>Scheduled queues</h2>
  {_table("scheduled", ["queue", "messages", "oldest", "pool", "state", ""], _scheduled(status))}
  <h2>Ready queues <small>egress path source → site</small></h2>
  {_table("ready", ["path", "messages", "connections / limit", "delivered per second / limit",
                     "last error"], _ready(status))}
</section>
<section id="responses-panel" class="wide">
  <h2>Receiver responses <small>last {status["recent"]["minutes"]} minutes</small></h2>
  {_table("responses", ["site", "kind", "code", "enhanced", "text", "count"],
          _responses(status))}
  <h2>Bounce classes</h2>
  {_table("classes", ["classification", "count"], _classes(status))}
</section>
<section id="rules-panel">
  <h2>Suspensions, bounce rules and automation</h2>
  {_table("rules", ["kind", "applies to", "reason", "expires in", ""], _rules(status))}
</section>
<section id="node-panel">
  <h2>Node</h2>
  <table id="node"><tbody>{_node(status)}</tbody></table>
</section>
<section id="detail-panel" class="wide" hidden>
  <h2 id="detail-title">Messages</h2>
  <button type="button" id="detail-close">close</button>
  <div id="detail"></div>
</section>
</main>
<dialog id="confirm">
  <form method="dialog">
    <p id="confirm-text"></p>
    <p id="confirm-fields">
      <label>reason <input id="confirm-reason" value="paused from the status page"></label>
      <label>duration <input id="confirm-duration" value="10m" size="6"></label>
    </p>
    <p id="confirm-error" class="error"></p>
    <menu><button value="cancel" id="confirm-cancel">cancel</button>
          <button value="ok" id="confirm-ok">confirm</button></menu>
  </form>
</dialog>
</body>
</html>
"""
