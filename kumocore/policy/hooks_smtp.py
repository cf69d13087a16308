"""The SMTP server events of the hook facade (:class:`kumocore.policy.hooks.Hooks`).

The events a server trace shows (``kumocore trace-smtp-server``) are wrapped in a trace
callback only while someone traces (:mod:`kumocore.trace.callbacks`); so is
``get_listener_domain``, in :mod:`kumocore.policy.hooks_lookup`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kumocore.auth_info import AclAuthInfo, parse_auth_info
from kumocore.errors import ConfigError, PolicyError
from kumocore.hookspecs import ConnMeta
from kumocore.mail.address import EnvelopeAddress
from kumocore.mail.message import recipient_tuple
from kumocore.trace.bus import SERVER_TRACE
from kumocore.trace.callbacks import traced_callback

if TYPE_CHECKING:
    from kumocore.mail.message import Message
    from kumocore.policy.hookcall import HookCaller


class SmtpServerHooks:
    """Awaitable, typed calls of the ``smtp_server_*`` events (part of :class:`Hooks`)."""

    caller: HookCaller

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
            "kumo_smtp_server_get_dynamic_parameters", listener=listener, conn_meta=conn_meta
        )
        if SERVER_TRACE.active:
            call = traced_callback(conn_meta, "smtp_server_get_dynamic_parameters", call)
        result = await call
        if result is None:
            return None
        if not isinstance(result, Mapping) or not all(isinstance(k, str) for k in result):
            raise PolicyError(
                "smtp_server_get_dynamic_parameters must return a table of "
                f"listener parameters (or nil), got {result!r:.80}"
            )
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
    ) -> bool | AclAuthInfo:
        """True/False, or the AuthInfo the policy returned (at least one identity).
        Raises PolicyError for an AuthInfo that is malformed or names nobody."""
        call = self.caller.call_first(
            "kumo_smtp_server_auth_plain",
            authz=authz,
            authc=authc,
            password=password,
            conn_meta=conn_meta,
        )
        if SERVER_TRACE.active:
            call = traced_callback(conn_meta, "smtp_server_auth_plain", call)
        result = await call
        if not isinstance(result, Mapping | AclAuthInfo):
            return bool(result)
        try:
            info = parse_auth_info(result)
        except ConfigError as exc:
            raise PolicyError(f"smtp_server_auth_plain returned an invalid AuthInfo: {exc}") \
                from None
        if not info.identities:  # KumoMTA refuses it too: nobody to record as authn_id
            raise PolicyError("smtp_server_auth_plain returned an AuthInfo with an empty "
                              "identities list, which is not supported")
        return info

    async def smtp_server_mail_from(self, sender: EnvelopeAddress, conn_meta: ConnMeta) -> None:
        call = self.caller.call_all(
            "kumo_smtp_server_mail_from", sender=sender, conn_meta=conn_meta
        )
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
            "kumo_smtp_server_message_deferred_inject", message=message, conn_meta=conn_meta
        )

    async def smtp_server_data(self, message: Message, conn_meta: ConnMeta) -> None:
        call = self.caller.call_all("kumo_smtp_server_data", message=message, conn_meta=conn_meta)
        if SERVER_TRACE.active:
            call = traced_callback(conn_meta, "smtp_server_data", call, _first)
        await call

    async def smtp_server_split_transaction(
        self, message: Message, conn_meta: ConnMeta
    ) -> list[tuple[EnvelopeAddress, ...]] | None:
        """The batches a policy makes of the transaction's recipients: one message per
        tuple (None: the listener's ``batch_handling`` decides). Callers check
        :meth:`implemented` first. Raises PolicyError for an answer of another shape."""
        call = self.caller.call_first(
            "kumo_smtp_server_split_transaction", message=message, conn_meta=conn_meta
        )
        if SERVER_TRACE.active:
            call = traced_callback(conn_meta, "smtp_server_split_transaction", call)
        result = await call
        return None if result is None else recipient_batches(result)

    async def smtp_server_rewrite_response(
        self, status: int, response: str, command: str | None, conn_meta: ConnMeta
    ) -> tuple[int, str]:
        """The reply to send instead of ``status response`` (unchanged when no handler
        answers). Raises PolicyError for an answer that is not ``(code, text)``."""
        call = self.caller.call_first(
            "kumo_smtp_server_rewrite_response",
            status=status,
            response=response,
            command=command,
            conn_meta=conn_meta,
        )
        if SERVER_TRACE.active:
            call = traced_callback(conn_meta, "smtp_server_rewrite_response", call)
        result = await call
        if result is None:
            return status, response
        if not isinstance(result, list | tuple) or len(result) != 2:
            raise PolicyError(
                f"smtp_server_rewrite_response must return status, response; got {result!r:.80}"
            )
        new_status, new_response = result
        if new_status is not None and (
            isinstance(new_status, bool)
            or not isinstance(new_status, int)
            or not 200 <= new_status <= 599
        ):
            raise PolicyError(f"smtp_server_rewrite_response: bad status {new_status!r}")
        if new_response is not None and not isinstance(new_response, str):
            raise PolicyError(f"smtp_server_rewrite_response: bad response {new_response!r:.80}")
        return (
            status if new_status is None else new_status,
            response if new_response is None else new_response,
        )


SPLIT_EVENT = "smtp_server_split_transaction"


def recipient_batches(value: Any) -> list[tuple[EnvelopeAddress, ...]]:
    """What ``smtp_server_split_transaction`` returned, checked: an array of non-empty
    arrays of addresses (EnvelopeAddress or strings). KumoMTA reads any table as an array,
    so a table keyed by name (its docs' BatchByDomain example keys one by domain) gives no
    batch there and ``550 5.7.1 relaying not permitted``; refused here, naming the
    problem. Batches are numbered from 1, as Lua counts."""
    if isinstance(value, Mapping):
        if not value:
            return []  # Lua's empty table: no batch at all
        key = next(iter(value))
        raise PolicyError(
            f"{SPLIT_EVENT} must return an array of arrays of addresses, got a "
            f"table keyed by {key!r:.60} (collect the batches with "
            "table.insert)"
        )
    if not isinstance(value, list | tuple):
        raise PolicyError(
            f"{SPLIT_EVENT} must return an array of arrays of addresses (or nil), got {value!r:.80}"
        )
    return [_batch(index, batch) for index, batch in enumerate(value, 1)]


def _batch(index: int, batch: Any) -> tuple[EnvelopeAddress, ...]:
    """One inner array of a split answer as its addresses."""
    if isinstance(batch, Mapping) and not batch:
        batch = []  # Lua's {} arrives as an empty mapping
    if not isinstance(batch, list | tuple):
        raise PolicyError(
            f"{SPLIT_EVENT}: batch {index} must be an array of addresses, got {batch!r:.80}"
        )
    try:
        return recipient_tuple(batch)
    except (TypeError, ValueError) as exc:  # AddressError is a ValueError
        raise PolicyError(f"{SPLIT_EVENT}: batch {index}: {exc}") from None


def _string_list(event: str, value: Any) -> list[str]:
    """A list of strings returned by a handler (Lua's empty table arrives as ``{}``)."""
    if isinstance(value, Mapping) and not value:
        return []
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return list(value)
    raise PolicyError(f"{event} must return a list of strings (or nil), got {value!r:.80}")


def _first(results: list[Any]) -> Any:
    """What a traced event's handler answered: the first answer (None: nothing)."""
    return results[0] if results else None
