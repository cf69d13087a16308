"""``kumo.automation.configure``: what ``setup_with_automation{publish, subscribe}`` asks for.

Each entry of ``publish`` / ``subscribe`` is one of:

* ``'redis-throttles'`` — kumocore's native form: matches and actions live in the Redis of
  ``kumo.configure_redis_throttles``, so every node sharing it applies them;
* ``'local'`` — in this process only (one node, no Redis);
* ``'http://host:port'`` — a TSA service. In ``publish``, records that match a rule are
  POSTed to ``<url>/publish_log_v1`` (KumoMTA's tsa-daemon, or a kumocore node or
  ``kumocore tsa`` serving that endpoint). In ``subscribe``, the node polls the kumocore
  service's ``<url>/api/admin/tsa/v1`` for the actions to apply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from kumocore.errors import ConfigError
from kumocore.tsa.store import ActionStore, LocalActionStore

if TYPE_CHECKING:
    from kumocore.policy.policy_host import PolicyHost
    from kumocore.throttle.store import ThrottleStore
    from kumocore.tsa.engine import TsaEngine
    from kumocore.tsa.matching import RulesFor

WHERE = "policy-extras.shaping: setup_with_automation"
NATIVE = ("redis-throttles", "local")


def _entries(name: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, dict):  # a Lua array arrives as {1: ..., 2: ...}
        value = [value[k] for k in sorted(value)]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{WHERE}: {name} must be a list of URLs, got {value!r}")
    for entry in value:
        if entry not in NATIVE and not entry.startswith(("http://", "https://")):
            raise ConfigError(
                f"{WHERE}: {name} entry {entry!r} is not a TSA URL (http://host:port), "
                "'redis-throttles' or 'local'")
    return list(value)


def configure(
    runtime: PolicyHost, rules_for: RulesFor, publish: Any, subscribe: Any,
    could_match: Callable[[str, bool], bool] | None = None,
) -> TsaEngine:
    """Build this runtime's automation engine (started by the server)."""
    from kumocore.tsa.engine import TsaEngine

    pub, sub = _entries("publish", publish), _entries("subscribe", subscribe)
    if runtime.tsa is not None:
        # The policy was evaluated again (kumo.bump_config_epoch): new rules, same service.
        if runtime.tsa.spec != (pub, sub):
            raise ConfigError(f"{WHERE}: publish/subscribe changed from {runtime.tsa.spec!r}: "
                              "restart kumocore to apply")
        runtime.tsa.rules_for, runtime.tsa.could_match = rules_for, could_match
        return runtime.tsa
    native = sorted({e for e in (*pub, *sub) if e in NATIVE})
    remote = [e for e in sub if e not in NATIVE]
    if len(native) > 1:
        raise ConfigError(f"{WHERE}: use one of 'redis-throttles' or 'local', not both")
    if (native and remote) or len(remote) > 1:
        raise ConfigError(
            f"{WHERE}: subscribe to one automation service: 'redis-throttles', 'local' or "
            f"one URL, got {sub!r}")
    store: ActionStore | Any
    if native == ["local"]:
        store = LocalActionStore()
    elif native:
        store = _redis_store  # resolved at server start, from its throttle store
    elif remote:
        from kumocore.tsa.remote import RemoteActionStore

        store = RemoteActionStore(remote[0], site_of=_site_of(runtime))
    else:
        store = None
    engine = TsaEngine(
        runtime.hooks, rules_for, store,
        publish=[e for e in pub if e not in NATIVE],
        match_locally=bool(native),
        could_match=could_match,
    )  # fmt: skip
    engine.spec = (pub, sub)
    runtime.tsa = engine
    return engine


def _site_of(runtime: PolicyHost) -> Callable[[str], Awaitable[str | None]]:
    async def site_of(domain: str) -> str | None:
        mx = await runtime.resolver.lookup_mx(domain)
        return str(mx.site_name) or None

    return site_of


def _redis_store(throttles: ThrottleStore | None) -> ActionStore:
    factory = getattr(throttles, "automation_store", None)
    if factory is None:
        raise ConfigError(
            f"{WHERE}: 'redis-throttles' needs kumo.configure_redis_throttles "
            "(call it in the init event)")
    store: ActionStore = factory()
    return store
