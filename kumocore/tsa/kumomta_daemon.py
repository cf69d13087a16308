"""Reading a KumoMTA ``tsa-daemon``'s state (a kumocore node subscribed to one).

KumoMTA's daemon has no list of actions; it serves its suspensions as JSON
(``/get_suspension_v1/suspended.json``: ``ready_q`` and ``sched_q`` entries) and its config
overrides as a generated shaping file (``/get_config_v1/shaping.toml``: ``["site"]`` blocks,
``mx_rollup``, ``sources.<source>.<option>``, each option preceded by ``# reason:`` and
``# expires:`` comments). This turns both into :class:`ActiveAction` entries. kumocore
nodes serve the same two documents, so either side can be the service.
"""

from __future__ import annotations

import time
import tomllib
from datetime import datetime
from typing import Any

from kumocore.tsa.store import ActiveAction

SUSPENSIONS = "/get_suspension_v1/suspended.json"
CONFIG = "/get_config_v1/shaping.toml"


def _unix(text: Any) -> float:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time() + 60  # unreadable: keep it while the daemon lists it


def suspensions(body: dict[str, Any], origin: str) -> list[ActiveAction]:
    actions = []
    for item in body.get("ready_q") or []:
        site = str(item.get("site_name", ""))
        source = str(item.get("source", ""))
        actions.append(ActiveAction(
            id=str(item.get("rule_hash", site)), kind="Suspend", rule=origin,
            reason=str(item.get("reason", "")), site=site,
            site_name=site.removeprefix(f"{source}->").removesuffix("@smtp_client"),
            source=source, domain="", since=time.time(), expires=_unix(item.get("expires"))))
    for item in body.get("sched_q") or []:
        campaign = item.get("campaign")
        actions.append(ActiveAction(
            id=str(item.get("rule_hash", "")), rule=origin,
            kind="SuspendCampaign" if campaign else "SuspendTenant",
            reason=str(item.get("reason", "")), site="", site_name="", source="",
            domain=str(item.get("domain", "")), since=time.time(),
            expires=_unix(item.get("expires")), tenant=item.get("tenant"), campaign=campaign))
    return actions


def config_overrides(text: str, origin: str) -> list[ActiveAction]:
    data = tomllib.loads(text)
    expiry = _expiry_comments(text)
    actions = []
    for name, block in data.items():
        if not isinstance(block, dict):
            continue
        rollup = bool(block.get("mx_rollup", True))
        for source, options in (block.get("sources") or {}).items():
            for option, value in (options or {}).items():
                reason, expires = expiry.get((name, source, option), ("", time.time() + 60))
                actions.append(ActiveAction(
                    id=f"{name}-{source}-{option}", rule=origin, reason=reason,
                    kind="SetConfig" if rollup else "SetDomainConfig", site="",
                    # A rollup block names a domain; its site is looked up by the
                    # subscriber (RemoteActionStore), until then the domain stands in.
                    site_name=name if rollup else "", source=source,
                    domain=name, since=time.time(), expires=expires,
                    name=option, value=value))
    return actions


def _expiry_comments(text: str) -> dict[tuple[str, str, str], tuple[str, float]]:
    """(block, source, option) → the ``# reason:`` / ``# expires:`` written above it."""
    found: dict[tuple[str, str, str], tuple[str, float]] = {}
    path: list[str] = []
    reason, expires = "", None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# reason:"):
            reason = stripped.removeprefix("# reason:").strip()
        elif stripped.startswith("# expires:"):
            expires = _unix(stripped.removeprefix("# expires:").strip())
        elif stripped.startswith("["):
            path = _header_path(stripped)
        elif "=" in stripped and expires is not None and len(path) == 3:
            key = next(iter(tomllib.loads(stripped)), "")
            found[(path[0], path[2], key)] = (reason, expires)
            reason, expires = "", None
    return found


def _header_path(header: str) -> list[str]:
    """``["mx.x.test".sources."src"]`` → ["mx.x.test", "sources", "src"] (TOML quoting)."""
    try:
        node: Any = tomllib.loads(header)
    except tomllib.TOMLDecodeError:
        return []
    path = []
    while isinstance(node, dict) and len(node) == 1:
        key = next(iter(node))
        path.append(key)
        node = node[key]
    return path
