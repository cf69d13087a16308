"""The typed facade over the hook contract: the rest of kumocore calls hooks through here.

Each method mirrors one hook in :mod:`kumocore.hookspecs` and says how it is called
(all / first non-None). The facade never calls pluggy itself; :mod:`kumocore.policy.hookcall` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy
import structlog

from kumocore import config
from kumocore.errors import ConfigError, PolicyError, WrongAnswerError
from kumocore.hookspecs import PolicyLoader
from kumocore.policy.hookcall import HookCaller
from kumocore.trace.bus import SERVER_TRACE
from kumocore.trace.callbacks import traced_callback

#: The egress pool and source every queue without one uses (KumoMTA's built-in name).
UNSPECIFIED = "unspecified"

#: Seconds the ``shutdown_logging`` event may take: the node's stop goes on without it
#: then (KumoMTA sets no bound, but a stop that never ends loses the spool's last writes).
SHUTDOWN_LOGGING_TIMEOUT = 2.0

log = structlog.get_logger("kumocore.policy.hooks")

if TYPE_CHECKING:
    from kumocore.config import (
        EgressPathConfig,
        EgressPool,
        EgressSource,
        ListenerDomain,
        QueueConfig,
    )
    from kumocore.http.acl import AccessControlList
    from kumocore.logs.sink import LogSink
    from kumocore.mail.message import EnvelopeAddress, Message
    from kumocore.mail.response import Response
    from kumocore.policy.kumo_api import Kumo
    from kumocore.spool.base import SpoolFactory
    from kumocore.throttle.store import ThrottleStore

ConnMeta = dict[str, Any]
T = TypeVar("T")


class Hooks:
    """Awaitable, typed calls of every kumocore hook."""

    def __init__(self, pm: pluggy.PluginManager, *, timeout: float | None = 30.0) -> None:
        self.pm = pm
        self.caller = HookCaller(pm, timeout=timeout)

    # ---------------------------------------------------------------- lifecycle
    async def init(self, kumo: Kumo) -> None:
        await self.caller.call_all("kumo_init", kumo=kumo)

    # pre_init, validate_config, throttle_insert_ready_queue and requeue_message are
    # KumoMTA's ``Multiple`` events: implementations run until one returns a value
    # (hookspecs.UNTIL_A_VALUE), hence call_first although the answer is not used.
    async def pre_init(self, kumo: Kumo) -> None:
        await self.caller.call_first("kumo_pre_init", kumo=kumo)

    async def validate_config(self) -> None:
        await self.caller.call_first("kumo_validate_config")

    async def shutdown(self) -> None:
        await self.caller.call_all("kumo_shutdown")

    async def shutdown_logging(self, timeout: float = SHUTDOWN_LOGGING_TIMEOUT) -> None:
        """KumoMTA's ``shutdown_logging``, bounded by ``timeout``; never raises: the stop
        goes on whatever the handlers do (KumoMTA ignores their errors too)."""
        if not self.implemented("shutdown_logging"):
            return
        try:
            async with asyncio.timeout(timeout):
                await self.caller.call_all("kumo_shutdown_logging")
        except TimeoutError:
            log.error("shutdown_logging did not finish in time; stopping without it",
                      timeout=timeout)
        except Exception as exc:  # already logged by the caller, with the plugin's name
            log.error("shutdown_logging failed; stopping anyway", error=str(exc))

    # ---------------------------------------------------------------- providers
    def policy_functions(self) -> dict[str, tuple[str, Callable[..., Any]]]:
        """All contributed ``kumo.*`` functions: name → (plugin, function)."""
        merged: dict[str, tuple[str, Callable[..., Any]]] = {}
        for plugin, functions in self.caller.call_all_sync("kumo_register_policy_functions"):
            for name, fn in functions.items():
                if name in merged:
                    raise ConfigError(
                        f"kumo.{name} is contributed by both {merged[name][0]!r} and {plugin!r}"
                    )
                merged[name] = (plugin, fn)
        return merged

    def policy_loaders(self) -> dict[str, PolicyLoader]:
        return _merge_maps(self.caller.call_all_sync("kumo_register_policy_loaders"))

    def spool_kinds(self) -> dict[str, SpoolFactory]:
        return _merge_maps(self.caller.call_all_sync("kumo_register_spool_kinds"))

    def log_sinks(self) -> list[LogSink]:
        return [
            s for _, sinks in self.caller.call_all_sync("kumo_register_log_sinks") for s in sinks
        ]

    def throttle_stores(self) -> list[ThrottleStore]:
        return [
            s
            for _, stores in self.caller.call_all_sync("kumo_register_throttle_stores")
            for s in stores
        ]

    def config_epoch(self) -> int:
        """The configuration epoch: the sum of every provider's reader (0 without any)."""
        return sum(
            int(read()) for _, read in self.caller.call_all_sync("kumo_register_config_epoch")
        )

    def bump_config_epoch(self) -> int:
        """Bump every provider's configuration epoch; returns how many providers there
        were (0: nothing to bump)."""
        bumps = self.caller.call_all_sync("kumo_register_config_epoch_bump")
        for _, bump in bumps:
            bump()
        return len(bumps)

    # ---------------------------------------------------------------- SMTP events (all)
    async def smtp_server_connection_accepted(self, conn_meta: ConnMeta) -> None:
        await self.caller.call_all("kumo_smtp_server_connection_accepted", conn_meta=conn_meta)

    async def smtp_server_get_dynamic_parameters(
        self, listener: str, conn_meta: ConnMeta
    ) -> dict[str, Any] | None:
        """The listener parameter overrides a policy computes for one connection (None:
        keep the listener's). Callers check :meth:`implemented` first, so a node without
        a handler pays nothing. Raises PolicyError for an answer that is not a table."""
        call = self.caller.call_first(
            "kumo_smtp_server_get_dynamic_parameters", listener=listener, conn_meta=conn_meta)
        if SERVER_TRACE.active:
            call = traced_callback(conn_meta, "smtp_server_get_dynamic_parameters", call)
        result = await call
        if result is None:
            return None
        if not isinstance(result, Mapping) or not all(isinstance(k, str) for k in result):
            raise PolicyError("smtp_server_get_dynamic_parameters must return a table of "
                              f"listener parameters (or nil), got {result!r:.80}")
        return dict(result)

    async def smtp_server_ehlo(
        self, domain: str, conn_meta: ConnMeta, extensions: list[str] | None = None
    ) -> list[str]:
        """Run every implementation; the extensions to advertise (the first list returned,
        else ``extensions`` as given)."""
        offered = list(extensions or [])
        call = self.caller.call_all(
            "kumo_smtp_server_ehlo", domain=domain, conn_meta=conn_meta, extensions=offered
        )
        if SERVER_TRACE.active:  # each event below: traced only while someone traces
            call = traced_callback(conn_meta, "smtp_server_ehlo", call, _first)
        results = await call
        for result in results:
            return _string_list("smtp_server_ehlo", result)
        return offered

    async def smtp_server_auth_plain(
        self, authz: str, authc: str, password: str, conn_meta: ConnMeta
    ) -> bool:
        call = self.caller.call_first(
            "kumo_smtp_server_auth_plain",
            authz=authz,
            authc=authc,
            password=password,
            conn_meta=conn_meta,
        )
        if SERVER_TRACE.active:
            call = traced_callback(conn_meta, "smtp_server_auth_plain", call)
        return bool(await call)

    async def smtp_server_mail_from(self, sender: EnvelopeAddress, conn_meta: ConnMeta) -> None:
        call = self.caller.call_all(
            "kumo_smtp_server_mail_from", sender=sender, conn_meta=conn_meta)
        if SERVER_TRACE.active:
            call = traced_callback(conn_meta, "smtp_server_mail_from", call, _first)
        await call

    async def smtp_server_mail_rcpt_to(
        self, recipient: EnvelopeAddress, conn_meta: ConnMeta
    ) -> None:
        call = self.caller.call_all(
            "kumo_smtp_server_mail_rcpt_to", recipient=recipient, conn_meta=conn_meta
        )
        if SERVER_TRACE.active:  # KumoMTA's name for the event
            call = traced_callback(conn_meta, "smtp_server_rcpt_to", call, _first)
        await call

    async def smtp_server_message_received(self, message: Message, conn_meta: ConnMeta) -> None:
        call = self.caller.call_all(
            "kumo_smtp_server_message_received", message=message, conn_meta=conn_meta
        )
        if SERVER_TRACE.active:
            call = traced_callback(conn_meta, "smtp_server_message_received", call, _first)
        await call

    async def smtp_server_message_deferred_inject(
        self, message: Message, conn_meta: ConnMeta
    ) -> None:
        await self.caller.call_all(
            "kumo_smtp_server_message_deferred_inject", message=message, conn_meta=conn_meta)

    async def smtp_server_data(self, message: Message, conn_meta: ConnMeta) -> None:
        call = self.caller.call_all(
            "kumo_smtp_server_data", message=message, conn_meta=conn_meta
        )
        if SERVER_TRACE.active:
            call = traced_callback(conn_meta, "smtp_server_data", call, _first)
        await call

    async def smtp_server_rewrite_response(
        self, status: int, response: str, command: str | None, conn_meta: ConnMeta
    ) -> tuple[int, str]:
        """The reply to send instead of ``status response`` (unchanged when no handler
        answers). Raises PolicyError for an answer that is not ``(code, text)``."""
        call = self.caller.call_first(
            "kumo_smtp_server_rewrite_response", status=status, response=response,
            command=command, conn_meta=conn_meta,
        )
        if SERVER_TRACE.active:
            call = traced_callback(conn_meta, "smtp_server_rewrite_response", call)
        result = await call
        if result is None:
            return status, response
        if not isinstance(result, list | tuple) or len(result) != 2:
            raise PolicyError(f"smtp_server_rewrite_response must return status, response; "
                              f"got {result!r:.80}")
        new_status, new_response = result
        if new_status is not None and (isinstance(new_status, bool)
                                       or not isinstance(new_status, int)
                                       or not 200 <= new_status <= 599):
            raise PolicyError(f"smtp_server_rewrite_response: bad status {new_status!r}")
        if new_response is not None and not isinstance(new_response, str):
            raise PolicyError(f"smtp_server_rewrite_response: bad response {new_response!r:.80}")
        return (status if new_status is None else new_status,
                response if new_response is None else new_response)

    def implemented(self, event: str) -> bool:
        """Whether any plugin or policy handles ``event`` (``"smtp_server_data"``): lets a
        caller skip preparing arguments nobody will read."""
        return self.caller.has_implementations(f"kumo_{event}")

    # ---------------------------------------------------------------- HTTP events
    async def http_message_generated(self, message: Message, auth_info: dict[str, Any]) -> None:
        await self.caller.call_all(
            "kumo_http_message_generated", message=message, auth_info=auth_info
        )

    async def xfer_message_received(self, message: Message, auth_info: dict[str, Any]) -> None:
        await self.caller.call_all(
            "kumo_xfer_message_received", message=message, auth_info=auth_info
        )

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

        return await self._lookup("kumo_get_acl_definition", AccessControlList,
                                  "aaa.make_access_control_list", resource=resource)

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
                {"name": UNSPECIFIED, "entries": [{"name": UNSPECIFIED}]})
        return await self._lookup(
            "kumo_get_egress_pool", config.EgressPool, "make_egress_pool", pool_name=pool_name
        )

    async def get_egress_source(self, source_name: str) -> EgressSource | None:
        """The source ``source_name``; ``unspecified`` is built in (see
        :meth:`get_egress_pool`)."""
        if source_name == UNSPECIFIED:
            return config.EgressSource.from_options({"name": UNSPECIFIED})
        return await self._lookup(
            "kumo_get_egress_source",
            config.EgressSource,
            "make_egress_source",
            source_name=source_name,
        )

    async def get_egress_path_config(
        self, domain: str, egress_source: str, site_name: str
    ) -> EgressPathConfig | None:
        return await self._lookup(
            "kumo_get_egress_path_config",
            config.EgressPathConfig,
            "make_egress_path",
            domain=domain,
            egress_source=egress_source,
            site_name=site_name,
        )

    # ---------------------------------------------------------------- queues & delivery
    async def spool_message_enumerated(self, message: Message) -> None:
        await self.caller.call_all("kumo_spool_message_enumerated", message=message)

    async def throttle_insert_ready_queue(self, message: Message) -> None:
        await self.caller.call_first("kumo_throttle_insert_ready_queue", message=message)

    async def requeue_message(
        self, message: Message, smtp_response: str, insert_context: list[str],
        increment_attempts: bool, delay: float | None,
    ) -> None:
        await self.caller.call_first(
            "kumo_requeue_message", message=message, smtp_response=smtp_response,
            insert_context=insert_context, increment_attempts=increment_attempts, delay=delay,
        )

    async def rebind_message(self, message: Message, data: dict[str, str]) -> None:
        await self.caller.call_all("kumo_rebind_message", message=message, data=data)

    async def smtp_client_rewrite_delivery_status(
        self, response: str, domain: str, tenant: str | None, campaign: str | None,
        routing_domain: str | None,
    ) -> int | None:
        """The status code a policy wants ``response`` handled as, or None."""
        result = await self.caller.call_first(
            "kumo_smtp_client_rewrite_delivery_status", response=response, domain=domain,
            tenant=tenant, campaign=campaign, routing_domain=routing_domain,
        )
        if result is None:
            return None
        if isinstance(result, bool) or not isinstance(result, int | float) \
                or int(result) != result or not 200 <= int(result) <= 599:
            raise PolicyError(
                "smtp_client_rewrite_delivery_status must return an SMTP status code "
                f"(200-599) or nil, got {result!r:.40}")
        return int(result)

    # ---------------------------------------------------------------- logs & bounces
    async def classify_bounce(self, response: Response) -> str:
        result = await self.caller.call_first("kumo_classify_bounce", response=response)
        return str(result) if result is not None else "Uncategorized"

    async def log_disposition(
        self, hook_name: str, message: Message, log_record: dict[str, Any]
    ) -> None:
        await self.caller.call_all("kumo_log_disposition", hook_name=hook_name,
                                   message=message, log_record=log_record)

    async def should_enqueue_log_record(self, message: Message, hook_name: str) -> bool:
        result = await self.caller.call_first(
            "kumo_should_enqueue_log_record", message=message, hook_name=hook_name
        )
        return bool(result)


def _string_list(event: str, value: Any) -> list[str]:
    """A list of strings returned by a handler (Lua's empty table arrives as ``{}``)."""
    if isinstance(value, Mapping) and not value:
        return []
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return list(value)
    raise PolicyError(f"{event} must return a list of strings (or nil), got {value!r:.80}")


def _merge_maps(results: list[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Merge provider maps; the first provider (in call order) of a name wins."""
    merged: dict[str, Any] = {}
    for _, mapping in results:
        for key, value in mapping.items():
            merged.setdefault(key, value)
    return merged


def _first(results: list[Any]) -> Any:
    """What a traced event's handler answered: the first answer (None: nothing)."""
    return results[0] if results else None
