"""HTTP endpoints of traffic shaping automation.

* ``POST /publish_log_v1`` — KumoMTA's tsa-daemon endpoint: one JSON log record (or an
  array of them) per request, as KumoMTA's shaping helper publishes them, so KumoMTA
  nodes of a mixed fleet can feed a kumocore automation service;
* ``GET /get_config_v1/shaping.toml`` — the active config overrides as a shaping file
  (KumoMTA's format: ``["site"]`` blocks with ``mx_rollup`` and ``sources``);
* ``GET /subscribe_event_v1`` — KumoMTA's websocket of suspensions (:mod:`.events_ws`);
* ``GET /api/admin/tsa/v1`` — the active actions (which rule, which path, since, until);
* ``DELETE /api/admin/tsa/v1`` with ``{"id": ...}`` — cancel one, on every node.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from functools import partial
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from kumocore.http.stepwise_body import stream_parts
from kumocore.logs.record import rfc3339_ns
from kumocore.node.stepwise import Steps, run_stepwise, run_whole, sorted_steps
from kumocore.tsa.events_ws import subscribe_event_v1, subscription_item
from kumocore.tsa.publish import Publisher

if TYPE_CHECKING:
    from kumocore.node.runtime import Runtime
    from kumocore.tsa.engine import TsaEngine
    from kumocore.tsa.store import ActiveAction

ADMIN_PATH = "/api/admin/tsa/v1"


def _error(status: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=status)


class TsaRoutes:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.publisher = Publisher()

    def _engine(self) -> TsaEngine | None:
        return self.runtime.tsa

    async def publish(self, request: web.Request) -> web.StreamResponse:
        engine = self._engine()
        if engine is None or not engine.match_locally:
            return _error(404, "traffic shaping automation is not configured on this node "
                               "(setup_with_automation with subscribe = {'redis-throttles'} "
                               "or {'local'})")
        error = await self.publisher.publish(engine, await request.read())
        return web.Response(text="") if error is None else _error(400, error)

    # The three listings below are rendered on the loop a slice at a time: tens of
    # thousands of actions take 0.1-0.5 s, and on a worker thread that work still competes
    # for the GIL with the loop (kumocore.node.stepwise): the admin listing of 40,000
    # actions rendered in a thread held the loop 0.1 s on CI's two busy cores.

    async def config_toml(self, request: web.Request) -> web.StreamResponse:
        engine = self._engine()
        actions = list(engine.actions.values()) if engine is not None else []
        text = await run_stepwise(toml_steps(actions))
        return web.Response(text=text, content_type="text/plain")

    async def suspensions(self, request: web.Request) -> web.StreamResponse:
        """KumoMTA's ``/get_suspension_v1/suspended.json``: ``{ready_q, sched_q}``."""
        engine = self._engine()
        actions = list(engine.actions.values()) if engine is not None else []
        body = await run_stepwise(_suspension_steps(actions))
        return web.Response(body=body, content_type="application/json")

    async def list_actions(self, request: web.Request) -> web.StreamResponse:
        engine = self._engine()
        if engine is None:
            return web.json_response({"configured": False, "store": None, "actions": []})
        try:
            actions = await engine.list_actions()
        except Exception as exc:
            return _error(503, f"automation store {engine.store.label} unavailable: {exc}")
        # "applied": this node has applied it (it syncs with the store every interval).
        head = {"configured": True, "store": engine.store.label}
        parts = _listing_parts(head, actions, set(engine.actions))
        return await stream_parts(request, parts, "application/json")

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        engine = self._engine()
        if engine is None:
            return _error(404, "traffic shaping automation is not configured on this node")
        try:
            body = orjson.loads(await request.read() or b"{}")
        except ValueError as exc:
            return _error(400, f"request body is not JSON: {exc}")
        action_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(action_id, str) or not action_id:
            return _error(400, "field 'id' (the action to cancel) is required")
        if not await engine.cancel(action_id):
            return _error(404, f"no active automation action with id {action_id!r}")
        return web.json_response({"id": action_id})


#: Actions rendered between two points where the loop may run (about 10 µs each).
_ACTIONS_PER_STEP = 200


def _listing_parts(head: dict[str, Any], actions: list[ActiveAction],
                   applied: set[str]) -> Iterator[bytes]:
    """``{**head, "actions": [...]}`` as JSON, each action with ``applied``, a few
    hundred actions a part."""
    now = time.time()
    yield orjson.dumps(head)[:-1] + b',"actions":['
    for start in range(0, len(actions), _ACTIONS_PER_STEP):
        entries = [{**action.to_json(now), "applied": action.id in applied}
                   for action in actions[start:start + _ACTIONS_PER_STEP]]
        items = orjson.dumps(entries)[1:-1]  # without the brackets
        yield items if start == 0 else b"," + items
    yield b"]}"


def _suspension_steps(actions: list[ActiveAction]) -> Steps[bytes]:
    body: dict[str, list[Any]] = {"ready_q": [], "sched_q": []}
    for n, action in enumerate(actions, 1):
        item = subscription_item(action)
        if item is not None:
            kind, entry = next(iter(item.items()))
            if kind == "ReadyQSuspension":
                # KumoMTA lists a ready-queue suspension by its hash alone here (the
                # websocket gives "<site>-<hash>").
                entry["rule_hash"] = action.id.removeprefix(f"{action.site}-")
            body["ready_q" if kind == "ReadyQSuspension" else "sched_q"].append(entry)
        if n % _ACTIONS_PER_STEP == 0:
            yield
    return orjson.dumps(body)


def render_toml(actions: list[ActiveAction]) -> str:
    """The active SetConfig/SetDomainConfig overrides as KumoMTA's generated shaping.toml."""
    return run_whole(toml_steps(actions))


def toml_steps(actions: list[ActiveAction]) -> Steps[str]:
    """:func:`render_toml` in steps."""
    blocks: dict[str, dict[str, Any]] = {}
    config = [a for a in actions if a.kind in ("SetConfig", "SetDomainConfig") and a.active]
    yield
    config = yield from sorted_steps(config, key=attrgetter("expires", "domain", "source"))
    for n, action in enumerate(config, 1):
        if n % _ACTIONS_PER_STEP == 0:
            yield
        # Keyed by the record's domain, as KumoMTA's daemon writes it: a KumoMTA node
        # rolls a `mx_rollup = true` block up to that domain's site itself (a site name
        # here would name no domain it can look up, and be dropped).
        rollup = action.kind == "SetConfig"
        block = blocks.setdefault(action.domain, {"mx_rollup": rollup, "sources": {}})
        block["sources"].setdefault(action.source, []).append(action)
    # KumoMTA's daemon's first line, which its docs tell operators to look for.
    lines = ["# Generated by tsa-daemon (kumocore)", f"# Number of entries: {len(config)}", ""]
    written = 0
    for name, block in blocks.items():
        lines.append(f"[{json.dumps(name)}]")
        lines.append(f"mx_rollup = {'true' if block['mx_rollup'] else 'false'}")
        lines.append("")
        for source, entries in block["sources"].items():
            lines.append(f"[{json.dumps(name)}.sources.{json.dumps(source)}]")
            for action in entries:
                lines.append(f"# reason: {action.reason}")
                lines.append(f"# expires: {rfc3339_ns(action.expires)}")
                lines.append(f"{action.name} = {json.dumps(action.value)}")
                written += 1
                if written % _ACTIONS_PER_STEP == 0:
                    yield
            lines.append("")
    return "\n".join(lines) + "\n"


def add_tsa_routes(app: web.Application, runtime: Runtime) -> None:
    routes = TsaRoutes(runtime)
    app.router.add_post("/publish_log_v1", routes.publish)
    app.router.add_get("/get_config_v1/shaping.toml", routes.config_toml)
    app.router.add_get("/subscribe_event_v1", partial(subscribe_event_v1, runtime))
    app.router.add_get("/get_suspension_v1/suspended.json", routes.suspensions)
    app.router.add_get(ADMIN_PATH, routes.list_actions)
    app.router.add_delete(ADMIN_PATH, routes.cancel)
