"""``kumo.api.admin.bounce.{bounce,list,delete}`` and ``kumo.api.admin.suspend.{suspend,
list,delete}``: the scheduled-queue bounces and suspensions of ``/api/admin/bounce/v1``
and ``/api/admin/suspend/v1``, called from a policy, as KumoMTA registers them.

Each takes the request body of its endpoint (``{ domain, campaign, tenant, routing_domain,
queue_names, reason, duration, expires }``, checked the same way; the suspension has no
``routing_domain``) and acts on the whole node: a rule made (or deleted) by a handler in
one worker of ``serve --workers N`` is passed to the other workers under the same id, and
shared with every node of the automation store as the endpoints share it. They need the
running server, so they are for event handlers, not for the policy's load or ``init``.

* ``bounce { ... }`` / ``suspend { ... }`` return the new rule's id (a UUID string);
* ``list()`` returns the active rules as the ``GET`` endpoint lists them (a bounce's
  counts are the whole node's, summed over the workers);
* ``delete(id)`` returns true if a worker or the shared store had that rule.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from kumocore.admin.merge import answered_json, merge_rules
from kumocore.admin.peers import tell_other_workers
from kumocore.admin.queue_rules import (
    add_bounce,
    add_suspension,
    cancel_bounce,
    cancel_suspension,
    suspension_entry,
)
from kumocore.errors import ConfigError
from kumocore.policy.policy_host import running
from kumocore.policy.policyfn import policy_function
from kumocore.queue.admin import QueueRule, parse_rule

if TYPE_CHECKING:
    from kumocore.node.services import Services
    from kumocore.policy.policy_host import PolicyHost

__all__ = ["make_rule_functions", "node_wide_delete"]

Add = Callable[["PolicyHost", "Services", QueueRule], Awaitable[None]]
Cancel = Callable[["PolicyHost", "Services", str], Awaitable[bool]]


def _kind_functions(
    runtime: PolicyHost, kind: str, add: Add, cancel: Cancel,
    listed: Callable[[Services], list[dict[str, Any]]],
) -> dict[str, Callable[..., Any]]:  # fmt: skip
    """``kumo.api.admin.<kind>.{<kind>,list,delete}`` over ``/api/admin/<kind>/v1``."""
    prefix, path = f"api.admin.{kind}", f"/api/admin/{kind}/v1"

    @policy_function(table=True)
    async def create(**request: Any) -> str:
        """Make a rule for the whole node from the endpoint's ``POST`` body (``domain``,
        ``campaign``, ``tenant``, ``queue_names``, ``reason``, ``duration`` | ``expires``);
        returns its id."""
        services = running(runtime, f"kumo.{prefix}.{kind}")
        try:
            rule = parse_rule(dict(request))
        except ConfigError as exc:
            raise ConfigError(f"kumo.{prefix}.{kind}: {exc}") from None
        await add(runtime, services, rule)
        await tell_other_workers(services.node, "POST", path, dict(request), rule.id)
        return rule.id

    async def list_rules() -> list[dict[str, Any]]:
        """The active rules, as the endpoint's ``GET`` lists them."""
        services = running(runtime, f"kumo.{prefix}.list")
        here = listed(services)
        if services.node is None:
            return here
        # Every worker holds the same rules, but each counts only the bounces it made:
        # merged as the endpoint merges them, so the counts are the node's.
        answers = await services.node.ask_others("GET", path, b"", {})
        return merge_rules([here, *answered_json(answers)])

    delete = node_wide_delete(runtime, f"{prefix}.delete", path, cancel, "a rule id")
    return {f"{prefix}.{kind}": create, f"{prefix}.list": list_rules, f"{prefix}.delete": delete}


def node_wide_delete(
    runtime: PolicyHost, name: str, path: str, cancel: Cancel, what: str
) -> Callable[[Any], Awaitable[bool]]:
    """``kumo.<name>(id)``: end the rule here (``cancel``) and on the other workers (the
    ``DELETE`` of ``path``); true if any of them, or the shared store, had it."""

    async def delete(rule_id: Any) -> bool:
        """Cancel a rule on every worker; true if a worker or the shared store had it."""
        services = running(runtime, f"kumo.{name}")
        if not isinstance(rule_id, str) or not rule_id:
            raise ConfigError(f"kumo.{name} takes {what} (a string), got {rule_id!r}")
        here = await cancel(runtime, services, rule_id)
        elsewhere = await tell_other_workers(services.node, "DELETE", path, {"id": rule_id})
        return here or elsewhere

    return delete


def _bounces(services: Services) -> list[dict[str, Any]]:
    return [rule.to_json() for rule in services.queues.admin.list_bounces()]


def _suspensions(services: Services) -> list[dict[str, Any]]:
    return [suspension_entry(rule) for rule in services.queues.admin.list_suspensions()]


def make_rule_functions(runtime: PolicyHost) -> Mapping[str, Callable[..., Any]]:
    """The six functions, bound to ``runtime``."""
    return {
        **_kind_functions(runtime, "bounce", add_bounce, cancel_bounce, _bounces),
        **_kind_functions(runtime, "suspend", add_suspension, cancel_suspension, _suspensions),
    }
