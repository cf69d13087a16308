"""The lookups of the hook facade (:class:`kumocore.policy.hooks.Hooks`): events whose
first answer is an object the rest of kumocore uses (an HTTP client's identity, an ACL, a
listener domain, a queue config, an egress pool, source or path config).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from kumocore import config
from kumocore.config.egress_vault import read_egress_vault_sources
from kumocore.errors import WrongAnswerError
from kumocore.hookspecs import ConnMeta
from kumocore.trace.bus import SERVER_TRACE
from kumocore.trace.callbacks import traced_callback

#: The egress pool and source every queue without one uses (KumoMTA's built-in name).
UNSPECIFIED = "unspecified"

if TYPE_CHECKING:
    from kumocore.config import (
        EgressPathConfig,
        EgressPool,
        EgressSource,
        ListenerDomain,
        QueueConfig,
    )
    from kumocore.http.acl import AccessControlList
    from kumocore.policy.hookcall import HookCaller

T = TypeVar("T")


class LookupHooks:
    """Awaitable, typed lookups through the policy (part of :class:`Hooks`)."""

    caller: HookCaller

    # ---------------------------------------------------------------- HTTP lookups (first)
    async def http_server_validate_auth_basic(
        self, user: str, password: str
    ) -> bool | Mapping[str, Any]:
        """True/False, or the AuthInfo table (identities, groups) the policy returned."""
        result = await self.caller.call_first(
            "kumo_http_server_validate_auth_basic", user=user, password=password
        )
        return result if isinstance(result, Mapping) else bool(result)

    async def http_server_validate_auth_bearer(self, token: str) -> bool | Mapping[str, Any]:
        """True/False, or the AuthInfo table (identities, groups) the policy returned."""
        result = await self.caller.call_first("kumo_http_server_validate_auth_bearer", token=token)
        return result if isinstance(result, Mapping) else bool(result)

    async def get_acl_definition(self, resource: str) -> AccessControlList | None:
        from kumocore.http.acl import AccessControlList

        return await self._lookup(
            "kumo_get_acl_definition",
            AccessControlList,
            "aaa.make_access_control_list",
            resource=resource,
        )

    # ---------------------------------------------------------------- lookups (first)
    async def _lookup(
        self, hook: str, expected: type[T], constructor: str, **kwargs: Any
    ) -> T | None:
        """First non-None answer, which must be the object ``kumo.<constructor>`` makes.

        A handler returning a plain table (a common slip) would otherwise be accepted and
        fail much later, far from its cause; here it refuses the message with the reason.
        """
        result = await self.caller.call_first(hook, **kwargs)
        if result is None or isinstance(result, expected):
            return result
        event = hook.removeprefix("kumo_")
        places = self.caller.where_defined(hook)
        raise WrongAnswerError(
            f"{event} must return kumo.{constructor}{{...}} (or nil), "
            f"got {type(result).__name__}: {result!r:.80}",
            where=" or ".join(places) or None,
        )

    async def get_listener_domain(
        self, domain: str, listener: str, conn_meta: ConnMeta
    ) -> ListenerDomain | None:
        call = self._lookup(
            "kumo_get_listener_domain",
            config.ListenerDomain,
            "make_listener_domain",
            domain=domain,
            listener=listener,
            conn_meta=conn_meta,
        )
        if SERVER_TRACE.active:  # KumoMTA's name says which domain was asked for
            call = traced_callback(conn_meta, f"get_listener_domain domain={domain}", call)
        return await call

    async def get_queue_config(
        self, domain: str, tenant: str | None, campaign: str | None, routing_domain: str | None
    ) -> QueueConfig | None:
        return await self._lookup(
            "kumo_get_queue_config",
            config.QueueConfig,
            "make_queue_config",
            domain=domain,
            tenant=tenant,
            campaign=campaign,
            routing_domain=routing_domain,
        )

    async def get_egress_pool(self, pool_name: str) -> EgressPool | None:
        """The pool ``pool_name``. ``unspecified`` is built in, as in KumoMTA: the policy's
        handler is not asked for it (one that refuses unknown names still works)."""
        if pool_name == UNSPECIFIED:
            return config.EgressPool.from_options(
                {"name": UNSPECIFIED, "entries": [{"name": UNSPECIFIED}]}
            )
        return await self._lookup(
            "kumo_get_egress_pool", config.EgressPool, "make_egress_pool", pool_name=pool_name
        )

    async def get_egress_source(
        self, source_name: str, *, read_secrets: bool = True
    ) -> EgressSource | None:
        """The source ``source_name``; ``unspecified`` is built in (see
        :meth:`get_egress_pool`)."""
        if source_name == UNSPECIFIED:
            return config.EgressSource.from_options({"name": UNSPECIFIED})
        source = await self._lookup(
            "kumo_get_egress_source",
            config.EgressSource,
            "make_egress_source",
            source_name=source_name,
        )
        if source is None or not read_secrets:
            return source
        return await read_egress_vault_sources(source, f"egress source {source_name!r}")

    async def get_egress_path_config(
        self, domain: str, egress_source: str, site_name: str, *, read_secrets: bool = True
    ) -> EgressPathConfig | None:
        """The path's configuration; with ``read_secrets`` (all but ``kumocore validate``)
        its HashiCorp Vault key sources read (:mod:`kumocore.config.egress_vault`)."""
        path = await self._lookup(
            "kumo_get_egress_path_config",
            config.EgressPathConfig,
            "make_egress_path",
            domain=domain,
            egress_source=egress_source,
            site_name=site_name,
        )
        if path is None or not read_secrets:
            return path
        return await read_egress_vault_sources(
            path, f"egress path {egress_source}->{site_name}")
