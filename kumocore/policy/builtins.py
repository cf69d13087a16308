"""The core's own plugin: the ``kumo.*`` functions that define the server, and defaults.

It is registered before every other plugin, so it is called last: each lookup here is the
fallback when neither the policy nor a third-party plugin answered (KumoMTA's defaults).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from kumocore.errors import ConfigError
from kumocore.hookspecs import hookimpl
from kumocore.policy.basic_functions import make_basic_functions
from kumocore.policy.hooks import UNSPECIFIED
from kumocore.policy.policyfn import policy_function
from kumocore.policy.python_loader import load_python_policy
from kumocore.policy.subsystem_functions import make_subsystem_functions
from kumocore.spool.base import MemorySpool, SpoolFactory

if TYPE_CHECKING:
    from kumocore.config import (
        EgressPathConfig,
        EgressPool,
        EgressSource,
        ListenerDomain,
        QueueConfig,
    )
    from kumocore.loghooks.disposition import DispositionHookSink
    from kumocore.loghooks.sink import LogHookSink
    from kumocore.logs.sink import LogSink
    from kumocore.policy.kumo_api import Kumo
    from kumocore.policy.policy_host import PolicyHost


class CorePlugin:
    """Defines the server from policy calls and supplies KumoMTA's defaults."""

    def __init__(self, runtime: PolicyHost) -> None:
        self.runtime = runtime
        self.log_hooks: list[LogHookSink] = []
        self.disposition_hooks: list[DispositionHookSink] = []

    # ------------------------------------------------------------- definitions
    @policy_function(table=True)
    def define_spool(self, **options: Any) -> None:
        from kumocore.config import SpoolDefinition

        spool = SpoolDefinition.from_options(options)
        self.runtime.config.spools[spool.name] = spool

    @policy_function(table=True)
    def start_esmtp_listener(self, **options: Any) -> Awaitable[None] | None:
        from kumocore.config import EsmtpListenerConfig

        config = EsmtpListenerConfig.from_options(options)
        return _with_vault_sources(config, self.runtime.config.esmtp_listeners.append)

    @policy_function(table=True)
    def start_http_listener(self, **options: Any) -> Awaitable[None] | None:
        from kumocore.config import HttpListenerConfig

        config = HttpListenerConfig.from_options(options)
        return _with_vault_sources(config, self.runtime.config.http_listeners.append)

    @policy_function(table=True)
    def define_egress_source(self, **options: Any) -> EgressSource:
        source = self.make_egress_source(**options)
        _not_builtin("define_egress_source", source.name)
        self.runtime.config.egress_sources[source.name] = source
        return source

    @policy_function(table=True)
    def define_egress_pool(self, **options: Any) -> EgressPool:
        pool = self.make_egress_pool(**options)
        _not_builtin("define_egress_pool", pool.name)
        self.runtime.config.egress_pools[pool.name] = pool
        return pool

    @policy_function(table=True)
    def configure_log_hook(self, **options: Any) -> None:
        """Each matching log record becomes a spooled message (kumocore.loghooks)."""
        from kumocore.loghooks.options import parse_options
        from kumocore.loghooks.sink import LogHookSink

        config = parse_options(options)
        if any(hook.config.name == config.name for hook in self.log_hooks):
            raise ConfigError(
                f"configure_log_hook: a hook named {config.name!r} is already configured"
            )
        self.log_hooks.append(LogHookSink(self.runtime, config))

    @policy_function(table=True)
    def configure_log_disposition_hook(self, **options: Any) -> None:
        """The policy's ``log_disposition_<name>`` handler sees each record about a
        message while it still exists (kumocore.loghooks.disposition)."""
        from kumocore.loghooks.disposition import DispositionHookSink, parse_disposition_options
        from kumocore.loghooks.policy_dispositions import PolicyDispositions

        config = parse_disposition_options(options)
        if any(hook.config.name == config.name for hook in self.disposition_hooks):
            raise ConfigError(
                f"configure_log_disposition_hook: a hook named {config.name!r} "
                "is already configured"
            )
        sink = DispositionHookSink(PolicyDispositions(self.runtime), config)
        sink.check_handlers()
        self.disposition_hooks.append(sink)

    # ------------------------------------------------------------- constructors
    @policy_function(table=True)
    def make_egress_source(self, **options: Any) -> EgressSource:
        from kumocore.config import EgressSource

        return EgressSource.from_options(options)

    @policy_function(table=True)
    def make_egress_pool(self, **options: Any) -> EgressPool:
        from kumocore.config import EgressPool

        return EgressPool.from_options(options)

    @policy_function(table=True)
    def make_egress_path(self, **options: Any) -> EgressPathConfig:
        from kumocore.config import EgressPathConfig
        from kumocore.delivery.dane import require_validating_resolver

        path = EgressPathConfig.from_options(options)
        if path.enable_dane:
            require_validating_resolver(self.runtime.resolver)
        return path

    @policy_function(table=True)
    def make_queue_config(self, **options: Any) -> QueueConfig:
        from kumocore.config import QueueConfig

        return QueueConfig.from_options(options)

    @policy_function(table=True)
    def make_listener_domain(self, **options: Any) -> ListenerDomain:
        from kumocore.config import ListenerDomain

        return ListenerDomain.from_options(options)

    # ------------------------------------------------------------- providers
    @hookimpl
    def kumo_register_policy_functions(self) -> Mapping[str, Callable[..., Any]]:
        functions: dict[str, Callable[..., Any]] = {
            "define_spool": self.define_spool,
            "start_esmtp_listener": self.start_esmtp_listener,
            "start_http_listener": self.start_http_listener,
            "define_egress_source": self.define_egress_source,
            "define_egress_pool": self.define_egress_pool,
            "make_egress_source": self.make_egress_source,
            "make_egress_pool": self.make_egress_pool,
            "make_egress_path": self.make_egress_path,
            "make_queue_config": self.make_queue_config,
            "make_listener_domain": self.make_listener_domain,
            "configure_log_hook": self.configure_log_hook,
            "configure_log_disposition_hook": self.configure_log_disposition_hook,
            **make_basic_functions(),  # kumo.reject, kumo.json_*, kumo.log_*...
        }
        functions.update(make_subsystem_functions(self.runtime))
        return functions

    @hookimpl
    def kumo_register_log_sinks(self) -> list[LogSink]:
        return [*self.log_hooks, *self.disposition_hooks]

    @hookimpl
    def kumo_register_policy_loaders(self) -> Mapping[str, Callable[[str, Kumo], object]]:
        return {".py": load_python_policy}

    @hookimpl
    def kumo_register_spool_kinds(self) -> Mapping[str, SpoolFactory]:
        from kumocore.spool.localdisk import LocalDiskSpool

        return {"Memory": MemorySpool, "LocalDisk": LocalDiskSpool}

    # ------------------------------------------------------------- default lookups
    @hookimpl(trylast=True)
    def kumo_get_egress_source(self, source_name: str) -> EgressSource | None:
        return self.runtime.config.egress_sources.get(source_name)

    @hookimpl(trylast=True)
    def kumo_get_egress_pool(self, pool_name: str) -> EgressPool | None:
        return self.runtime.config.egress_pools.get(pool_name)

    @hookimpl(trylast=True)
    def kumo_get_queue_config(self) -> QueueConfig:
        from kumocore.config import QueueConfig

        return QueueConfig.from_options({})

    @hookimpl(trylast=True)
    def kumo_get_egress_path_config(self) -> EgressPathConfig:
        from kumocore.config import EgressPathConfig

        return EgressPathConfig.from_options({})


ListenerT = TypeVar("ListenerT")


def _with_vault_sources(
    config: ListenerT, add: Callable[[ListenerT], None]
) -> Awaitable[None] | None:
    """``add(config)`` now, or (a key source in HashiCorp Vault) an awaitable that reads
    the secrets first: the listener's TLS code then finds them inline
    (kumocore.config.listener_vault)."""
    from kumocore.config.listener_vault import has_vault_sources, read_listener_vault_sources

    if not has_vault_sources(config):
        add(config)
        return None
    function = getattr(config, "options_for", "listener")

    async def read_then_add() -> None:
        add(await read_listener_vault_sources(config, function))

    return read_then_add()


def _not_builtin(function: str, name: str) -> None:
    """``unspecified`` is KumoMTA's built-in pool and source: never looked up, so a
    definition of it would be silently ignored."""
    if name == UNSPECIFIED:
        raise ConfigError(
            f"{function}: {UNSPECIFIED!r} is the built-in egress pool and "
            "source of queues that name none; choose another name"
        )
