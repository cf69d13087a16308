"""Operator actions on a running node: the diagnostic log filter, aborting a connection.

* ``POST /api/admin/set_diagnostic_log_filter/v1`` ``{"filter": "kumod=debug"}``: the same
  change as ``kumo.set_diagnostic_log_filter`` in a policy (one implementation,
  :func:`kumocore.policy.tasks.set_diagnostic_log_filter`), answered ``200`` with an empty
  body as in KumoMTA. A filter that does not parse is ``400``.
* ``POST /api/admin/abort-ready-q-conn/v1`` ``{"queue_name": ..., "session_id": ...}``:
  cancel one open connection of a ready queue (:mod:`kumocore.queue.dispatchers` says what
  becomes of its messages). ``200`` with the text ``aborted <session_id>`` (KumoMTA's
  answer), ``404`` when neither the queue nor the session is known.
* ``GET /api/machine-info`` (:mod:`kumocore.admin.machine_info`).

With ``serve --workers N`` both POSTs are fanned out (:mod:`kumocore.admin.fanout`): the
filter is set in every worker, and an abort reaches the one worker that runs the session
(its answer is the node's; 404 only when no worker has it).

Differences from KumoMTA: bodies that do not parse, lack a field or carry an unknown one
are ``400`` JSON errors (KumoMTA: 400/422 with a text body), and the 404 of an abort is a
JSON error like every kumocore admin error.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from kumocore.admin.api_support import ADMIN_PREFIX, ApiError, json_errors, manager_of, read_object
from kumocore.admin.machine_info import MACHINE_INFO_PATH, machine_info_handler
from kumocore.errors import ConfigError
from kumocore.policy.tasks import set_diagnostic_log_filter
from kumocore.queue.dispatchers import parse_session_id

if TYPE_CHECKING:
    from kumocore.node.runtime import Runtime
    from kumocore.queue.path import EgressPath

__all__ = ["ABORT_PATH", "LOG_FILTER_PATH", "add_node_ops_routes", "set_log_filter"]

LOG_FILTER_PATH = f"{ADMIN_PREFIX}/set_diagnostic_log_filter/v1"
ABORT_PATH = f"{ADMIN_PREFIX}/abort-ready-q-conn/v1"

log = structlog.get_logger("kumocore.admin")


def find_ready_queue(paths: Any, name: str) -> EgressPath | None:
    """The egress path whose ready queue is called ``name`` (``source->site@protocol``)."""
    for path in list(paths):
        if path.key.name == name:
            return path  # type: ignore[no-any-return]
    return None


async def set_log_filter(request: web.Request) -> web.StreamResponse:
    """The log filter endpoint (also on the tsa and proxy services' listeners)."""
    try:
        body = await read_object(request, ("filter",))
        spec = body.get("filter")
        if not isinstance(spec, str):
            raise ApiError(400, "field 'filter' is required and must be a string")
        set_diagnostic_log_filter(spec)
    except ApiError as exc:
        return web.json_response({"error": exc.message}, status=exc.status)
    except ConfigError as exc:  # a filter that does not parse
        return web.json_response({"error": str(exc)}, status=400)
    # Written at debug level: it shows only when the new filter lets debug through,
    # which is how an operator (and the tests) see each worker took the change.
    log.debug("diagnostic log filter applied", filter=spec, pid=os.getpid())
    return web.Response(status=200)


class NodeOpsApi:
    """The handlers of this module, bound to one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @json_errors
    async def abort_ready_q_conn(self, request: web.Request) -> web.StreamResponse:
        body = await read_object(request, ("queue_name", "session_id"))
        queue_name = body.get("queue_name")
        if not isinstance(queue_name, str) or not queue_name:
            raise ApiError(400, "field 'queue_name' is required and must be a string")
        try:
            session_id = parse_session_id(body.get("session_id"))
        except ValueError as exc:
            raise ApiError(400, str(exc)) from exc
        path = find_ready_queue(manager_of(self.runtime).paths.values(), queue_name)
        if path is None or not path.dispatchers.abort(session_id):
            raise ApiError(404, f"no matching dispatcher for queue={queue_name} "
                           f"session={session_id}")  # fmt: skip
        log.info("ready queue connection aborted by operator", queue=queue_name,
                 session_id=str(session_id))  # fmt: skip
        return web.Response(text=f"aborted {session_id}")


def add_node_ops_routes(app: web.Application, runtime: Runtime) -> None:
    """Add this module's endpoints to ``app`` (called by :func:`add_admin_routes`)."""
    api = NodeOpsApi(runtime)
    app.router.add_post(LOG_FILTER_PATH, set_log_filter)
    app.router.add_post(ABORT_PATH, api.abort_ready_q_conn)
    app.router.add_get(MACHINE_INFO_PATH, machine_info_handler(runtime))
