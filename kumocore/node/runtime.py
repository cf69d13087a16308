"""Loading a policy into a plugin manager and running its ``init``.

:class:`Runtime` is the state one kumocore process shares between its components: the hook
facade, the ``kumo`` API object, what the policy's ``init`` defined (:class:`ServerConfig`),
the DNS resolver, and — once the server starts — its :class:`~kumocore.node.services.Services`
(spools, queues, logs, throttles...), built by :func:`kumocore.node.server.wire_services`.
``kumocore validate`` stops after :meth:`Runtime.load`; ``kumocore serve`` goes on to
:class:`kumocore.node.server.Server`.
"""

from __future__ import annotations

import inspect
import os
import socket
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy
import structlog

from kumocore.config.defined import ServerConfig
from kumocore.dns import Resolver
from kumocore.dns.hosts import HostsFile
from kumocore.errors import ConfigError, PolicyError
from kumocore.http.acl_check import access_control_for
from kumocore.http.inject_rate import RecipientRateLimit
from kumocore.logs.journal import Journal
from kumocore.policy.builtins import CorePlugin
from kumocore.policy.hooks import Hooks
from kumocore.policy.kumo_api import Kumo
from kumocore.policy.plugins import (
    POLICY_PLUGIN_NAME,
    PluginLoadError,
    make_plugin_manager,
    register_plugin,
)
from kumocore.policy.validation import ValidationReport

if TYPE_CHECKING:
    from kumocore.admin.peers import NodePeers
    from kumocore.node.services import Services
    from kumocore.tsa.engine import TsaEngine

log = structlog.get_logger("kumocore.node.runtime")


class Runtime:
    """One kumocore process's policy, plugins and shared services."""

    def __init__(
        self,
        *,
        load_entrypoints: bool | None = None,
        blocked: tuple[str, ...] = (),
        extra_plugins: tuple[tuple[str, object], ...] = (),
        hostname: str | None = None,
        hook_timeout: float | None = 30.0,
    ) -> None:
        self.hostname = hostname or socket.gethostname()
        self.nodeid = str(uuid.uuid4())
        self.config = ServerConfig()
        # The system's hosts file before DNS for addresses, as KumoMTA's resolver.
        self.resolver: Resolver = Resolver(hosts=HostsFile())
        self.policy_path: str | None = None
        #: What ``kumo.validation_failed()`` recorded (``kumocore validate`` reports it).
        self.validation = ValidationReport()
        self.init_done = False
        #: Bind listeners with SO_REUSEPORT (``serve --workers N``: workers share addresses).
        self.reuse_port = False
        #: The other workers of this node (``serve --workers N``), for node-wide admin answers.
        self.node: NodePeers | None = None
        #: Traffic shaping automation, when the policy's ``init`` set it up (kumocore.tsa).
        self.tsa: TsaEngine | None = None
        #: The started node's services (:func:`kumocore.node.server.wire_services`); None until
        #: the server starts.
        self.services: Services | None = None
        self._journal: Journal | None = None
        #: ``kumo.set_httpinject_recipient_rate_limit``, shared by the node's HTTP listeners.
        self.httpinject_rate_limit = RecipientRateLimit(
            lambda: None if self.services is None else self.services.throttles)
        self.pm = make_plugin_manager(
            load_entrypoints=load_entrypoints,
            blocked=blocked,
            plugins=extra_plugins,
            core=("kumocore.core", CorePlugin(self)),
        )
        self.hooks = Hooks(self.pm, timeout=hook_timeout)
        #: HTTP access control (``kumo.aaa``): the policy's ACLs and their caches.
        self.http_access = access_control_for(self.hooks)
        self.kumo = Kumo({name: fn for name, (_, fn) in self.hooks.policy_functions().items()})

    @property
    def journal(self) -> Journal:
        """The started node's log journal (before the start, one that writes nothing)."""
        if self.services is not None:
            return self.services.journal
        if self._journal is None:
            self._journal = Journal(None, self.nodeid, self.hooks.classify_bounce)
        return self._journal

    # ------------------------------------------------------------------ policy
    async def load_policy(self, path: str | os.PathLike[str]) -> None:
        """Load the operator's policy (Lua or Python) and register it as the first plugin."""
        policy = Path(path)
        if not policy.is_file():
            raise ConfigError(f"policy file {str(policy)!r} does not exist")
        loaders = self.hooks.policy_loaders()
        loader = loaders.get(policy.suffix)
        if loader is None:
            known = ", ".join(sorted(loaders)) or "none"
            raise ConfigError(
                f"no policy loader for {policy.suffix!r} files ({policy}); known: {known}"
            )
        plugin = loader(str(policy), self.kumo)
        if inspect.isawaitable(plugin):
            plugin = await plugin
        try:
            register_plugin(self.pm, plugin, POLICY_PLUGIN_NAME)
            self.pm.check_pending()
        except (pluggy.PluginValidationError, PluginLoadError) as exc:
            # e.g. a hook implementation with a misspelled argument or hook name
            raise PolicyError(str(exc), where=str(policy)) from exc
        self.policy_path = str(policy)

    async def run_init(self) -> None:
        """Run every ``init`` handler, then check that what it defined fits together."""
        await self.hooks.pre_init(self.kumo)
        await self.hooks.init(self.kumo)
        self.init_done = True
        self._check_config()

    async def load(self, path: str | os.PathLike[str]) -> None:
        """Load a policy and run its ``init``: what ``kumocore validate`` does."""
        await self.load_policy(path)
        await self.run_init()

    def _check_config(self) -> None:
        kinds = self.hooks.spool_kinds()
        for spool in self.config.spools.values():
            if spool.kind not in kinds:
                raise ConfigError(
                    f"kumo.define_spool: kind {spool.kind!r} for spool {spool.name!r} is not "
                    f"provided by any plugin; known kinds: {', '.join(sorted(kinds))}"
                )
        for pool in self.config.egress_pools.values():
            for entry in pool.entries:
                if entry.name not in self.config.egress_sources:
                    # A get_egress_source handler may still provide it; say so, don't fail.
                    log.debug(
                        "pool entry not defined by define_egress_source",
                        pool=pool.name,
                        source=entry.name,
                    )
