"""``kumo.api.admin.suspend_ready_q.{suspend,list,delete}``: the ready-queue suspensions of
``/api/admin/suspend-ready-q/v1`` (:mod:`kumocore.admin.ready_q`), called from a policy.

They do what the HTTP endpoints do, for the whole node: a suspension made (or deleted) by a
handler running in one worker of ``serve --workers N`` is passed to the other workers over
their private sockets (:mod:`kumocore.admin.peers`), under the same id. They need the
running server, so they are for event handlers, not for the policy's load or ``init``.

* ``suspend { name = ..., reason = ..., duration = '10m' | expires = 'RFC 3339' }``
  returns the suspension's id;
* ``list()`` returns the active suspensions as the ``GET`` endpoint lists them;
* ``delete(id)`` returns true if a worker had that suspension.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kumocore.admin.peers import tell_other_workers
from kumocore.admin.ready_holds import add_ready_suspension, cancel_ready_suspension
from kumocore.admin.rules_policy import node_wide_delete
from kumocore.policy.policy_host import running
from kumocore.policy.policyfn import policy_function
from kumocore.queue.ready_suspend import parse_ready_suspension

if TYPE_CHECKING:
    from kumocore.policy.policy_host import PolicyHost

__all__ = ["make_ready_q_functions"]

_PREFIX = "api.admin.suspend_ready_q"
_PATH = "/api/admin/suspend-ready-q/v1"


def make_ready_q_functions(runtime: PolicyHost) -> dict[str, Callable[..., Any]]:
    """The three functions, bound to ``runtime``."""

    @policy_function(table=True)
    async def suspend(**request: Any) -> str:
        """Suspend delivery on the ready queue ``name`` for every worker of the node:
        ``{ name, reason, duration = '5m' | expires = RFC 3339 }``; returns the id."""
        services = running(runtime, f"kumo.{_PREFIX}.suspend")
        suspension = parse_ready_suspension(dict(request))
        await add_ready_suspension(runtime, services, suspension)
        await tell_other_workers(services.node, "POST", _PATH, dict(request), suspension.id)
        return suspension.id

    async def list_suspensions() -> list[dict[str, Any]]:
        """The active ready-queue suspensions: ``{id, name, reason, duration, expires}``."""
        services = running(runtime, f"kumo.{_PREFIX}.list")
        # Every worker holds the same suspensions (they are made for the whole node).
        return [s.to_json() for s in services.queues.egress.ready_holds.list()]

    delete = node_wide_delete(runtime, f"{_PREFIX}.delete", _PATH, cancel_ready_suspension,
                              "a suspension id")  # fmt: skip

    return {
        f"{_PREFIX}.suspend": suspend,
        f"{_PREFIX}.list": list_suspensions,
        f"{_PREFIX}.delete": delete,
    }
