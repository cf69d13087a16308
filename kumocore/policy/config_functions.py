"""``kumo.invoke_get_*``, ``kumo.format_*_toml`` and ``kumo.compute_*_constraints``: a
policy reading the effective configuration of a queue, pool, source or egress path, and
what it implies, as KumoMTA's helper scripts (``resolve-shaping-domain``) do.

* ``invoke_get_queue_config(queue_name)`` parses the name (``campaign:tenant@domain!
  routing_domain``) and asks ``get_queue_config``; ``invoke_get_egress_path_config(domain,
  source, site)`` asks ``get_egress_path_config``. Either answers KumoMTA's defaults when
  no handler answers, as KumoMTA does.
* ``invoke_get_egress_pool(name)`` (``unspecified`` when nil) and
  ``invoke_get_egress_source(name)`` read the definitions routing uses, from its cache
  (kept for the definition's ``ttl``: :mod:`kumocore.queue.egress_cache`) once the node
  runs, else from the handlers. A pool is answered only when each of its sources is
  defined, as KumoMTA validates it; an undefined pool or source is an error.

Each answers a plain table shaped like the options of the matching ``kumo.make_*``
(:mod:`kumocore.config.kumo_serde`: durations as ``"5m"``, limits as ``{limit, force_local}``),
absent values nil. The formatters and the constraints functions take such a table, or
the object ``kumo.make_egress_path`` / ``kumo.make_queue_config`` made, validate it as
those functions do, and answer compact TOML (keys sorted, as kcli prints a path) or
KumoMTA's ``EffectiveConstraints`` (:mod:`kumocore.config.constraints`, whose ``ceilings:``
text kcli's ``inspect-ready-q`` prints too).

A handler that asks for its own answer (``get_queue_config`` calling
``invoke_get_queue_config``) recurses; :data:`MAX_NESTING` nested lookups end it with an
error naming the event instead of exhausting the stack.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from kumocore.config.constraints import (
    checked_constraints,
    merge_constraints,
    path_constraints,
    queue_constraints,
    render_ceilings,
)
from kumocore.config.toml_text import toml_encode_pretty_compact
from kumocore.errors import PolicyError
from kumocore.mail.queue_name import parse_queue_name

if TYPE_CHECKING:
    from kumocore.config import EgressPathConfig, EgressPool, EgressSource, QueueConfig
    from kumocore.policy.policy_host import PolicyHost

__all__ = ["MAX_NESTING", "make_config_functions"]

#: Lookups a policy may nest through these functions (each a handler calling the next).
MAX_NESTING = 8
_nesting: contextvars.ContextVar[int] = contextvars.ContextVar("kumo_invoke_nesting", default=0)
T = TypeVar("T")


async def _nested(event: str, call: Callable[[], Awaitable[T]]) -> T:
    """Run one lookup, refusing the one past :data:`MAX_NESTING` (a handler asking for its
    own answer would otherwise recurse until the stack runs out)."""
    depth = _nesting.get()
    if depth >= MAX_NESTING:
        raise PolicyError(f"kumo.invoke_get_{event}: {MAX_NESTING} nested lookups; does a "
                          f"{event} handler call kumo.invoke_get_{event} for itself?")  # fmt: skip
    token = _nesting.set(depth + 1)
    try:
        return await call()
    finally:
        _nesting.reset(token)


def _queue_config(value: Any, function: str) -> QueueConfig:
    from kumocore.config import QueueConfig

    if isinstance(value, QueueConfig):
        return value
    return QueueConfig.from_options(value, function=function)


def _path_config(value: Any, function: str) -> EgressPathConfig:
    from kumocore.config import EgressPathConfig

    if isinstance(value, EgressPathConfig):
        return value
    return EgressPathConfig.from_options(value, function=function)


def _constraints(value: Any, function: str) -> dict[str, Any]:
    try:
        return checked_constraints(value)
    except ValueError as exc:
        raise PolicyError(f"{function}: {exc}") from None


def make_config_functions(runtime: PolicyHost) -> dict[str, Callable[..., Any]]:
    async def source(name: str) -> EgressSource:
        services = runtime.services
        lookup = (runtime.hooks.get_egress_source if services is None
                  else services.queues.router.sources.get)  # fmt: skip
        found = await _nested("egress_source", lambda: lookup(name))
        if found is None:
            raise PolicyError(f"get_egress_source {name!r}: egress source {name!r} is not "
                              "defined (no get_egress_source handler answered)")  # fmt: skip
        return found

    async def pool(name: str) -> EgressPool:
        services = runtime.services
        lookup = (runtime.hooks.get_egress_pool if services is None
                  else services.queues.router.pools.get)  # fmt: skip
        found = await _nested("egress_pool", lambda: lookup(name))
        context = f"resolving egress pool {name!r}"
        if found is None:
            raise PolicyError(f"{context}: egress pool {name!r} is not defined "
                              "(no get_egress_pool handler answered)")  # fmt: skip
        for entry in found.entries:
            try:
                await source(entry.name)
            except PolicyError as exc:
                raise PolicyError(f"{context}: {exc}") from None
        return found

    async def invoke_get_queue_config(queue_name: str) -> dict[str, Any]:
        """The effective configuration of the scheduled queue ``queue_name``."""
        from kumocore.config import QueueConfig

        if not isinstance(queue_name, str):
            raise PolicyError(f"kumo.invoke_get_queue_config: expected a queue name, "
                              f"got {queue_name!r:.80}")  # fmt: skip
        parts = parse_queue_name(queue_name)
        if not parts.domain:
            form = "campaign:tenant@domain!routing_domain"
            raise PolicyError(f"kumo.invoke_get_queue_config: queue name {queue_name!r} has "
                              f"no domain (expected {form})")  # fmt: skip
        found = await _nested("queue_config", lambda: runtime.hooks.get_queue_config(
            parts.domain, parts.tenant, parts.campaign, parts.routing_domain))  # fmt: skip
        return (found or QueueConfig.from_options({})).to_dict()

    async def invoke_get_egress_path_config(
        routing_domain: str, egress_source: str, site_name: str
    ) -> dict[str, Any]:
        """The effective egress path configuration for (domain, source, site)."""
        from kumocore.config import EgressPathConfig

        found = await _nested("egress_path_config", lambda: runtime.hooks.get_egress_path_config(
            str(routing_domain), str(egress_source), str(site_name)))  # fmt: skip
        return (found or EgressPathConfig.from_options({})).to_dict()

    async def invoke_get_egress_pool(pool_name: str | None = None) -> dict[str, Any]:
        """The pool ``pool_name`` (``unspecified`` when nil), its sources checked."""
        return (await pool(str(pool_name or "unspecified"))).to_dict()

    async def invoke_get_egress_source(source_name: str) -> dict[str, Any]:
        """The egress source ``source_name``."""
        return (await source(str(source_name))).to_dict()

    def compute_egress_path_config_constraints(
        path_config: Any, additional: Any = None
    ) -> dict[str, Any]:
        """KumoMTA's throughput ceilings of a path, ``additional`` ones folded in."""
        function = "kumo.compute_egress_path_config_constraints"
        constraints = path_constraints(_path_config(path_config, function))
        if additional is None:
            return constraints
        return merge_constraints(constraints, _constraints(additional, function))

    def compute_queue_config_constraints(queue_config: Any) -> dict[str, Any]:
        """The ceilings a scheduled queue implies (its ``max_message_rate``)."""
        function = "kumo.compute_queue_config_constraints"
        return queue_constraints(_queue_config(queue_config, function))

    def format_queue_config_toml(queue_config: Any) -> str:
        """A queue configuration as compact TOML (keys sorted)."""
        function = "kumo.format_queue_config_toml"
        return toml_encode_pretty_compact(_queue_config(queue_config, function).to_dict())

    def format_egress_path_config_toml(path_config: Any) -> str:
        """An egress path configuration as compact TOML (keys sorted)."""
        function = "kumo.format_egress_path_config_toml"
        return toml_encode_pretty_compact(_path_config(path_config, function).to_dict())

    def format_egress_path_config_constraints(constraints: Any) -> str:
        """Constraints as the ``ceilings:`` block kcli prints."""
        function = "kumo.format_egress_path_config_constraints"
        return render_ceilings(_constraints(constraints, function))

    return {
        "invoke_get_queue_config": invoke_get_queue_config,
        "invoke_get_egress_path_config": invoke_get_egress_path_config,
        "invoke_get_egress_pool": invoke_get_egress_pool,
        "invoke_get_egress_source": invoke_get_egress_source,
        "compute_egress_path_config_constraints": compute_egress_path_config_constraints,
        "compute_queue_config_constraints": compute_queue_config_constraints,
        "format_queue_config_toml": format_queue_config_toml,
        "format_egress_path_config_toml": format_egress_path_config_toml,
        "format_egress_path_config_constraints": format_egress_path_config_constraints,
    }
