"""``kumo.spf.check_host`` and ``kumo.spf.check_msg`` for Lua and Python policies.

Both answer in KumoMTA's shape: ``{ disposition = 'pass', result = {...} }`` where
``result`` is an authentication result (``method = 'spf'``, ``result``, ``reason``,
``props`` with ``smtp.mailfrom``/``smtp.helo``) ready for ``msg:add_authentication_results``.
The client address comes from the ``received_from`` meta the listener records; the last,
optional argument names a resolver defined with ``kumo.dns.define_resolver``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kumocore.dns.lists import NamedResolvers
from kumocore.errors import ConfigError
from kumocore.policy.policyfn import policy_function, string_argument
from kumocore.spf.evaluator import CheckHostParams, check_host
from kumocore.spf.result import SpfResult


def _meta_string(meta: Any, key: str) -> str | None:
    getter = getattr(meta, "get_meta", None)
    if getter is None and isinstance(meta, Mapping):
        getter = meta.get
    if getter is None:
        raise ConfigError(f"kumo.spf: expected connection metadata, got {meta!r:.60}")
    value = getter(key)
    return value if isinstance(value, str) and value else None


def _client_ip(meta: Any, function: str) -> str:
    received_from = _meta_string(meta, "received_from")
    if received_from is None:
        raise ConfigError(f"kumo.spf.{function}: received_from missing from metadata")
    # ``IP:port``, ``[IPv6]:port`` or a bare IP, as the listeners record it.
    if received_from.startswith("["):
        return received_from[1:].partition("]")[0]
    host, sep, port = received_from.rpartition(":")
    return host if sep and port.isdigit() and host.count(":") == 0 else received_from


def _output(result: SpfResult, params: CheckHostParams) -> dict[str, Any]:
    props: dict[str, str] = {}
    if params.sender is not None:
        props["smtp.mailfrom"] = params.sender
    if params.helo is not None:
        props["smtp.helo"] = params.helo
    return {
        "disposition": result.disposition,
        "result": {
            "method": "spf",
            "method_version": None,
            "result": result.disposition,
            "reason": result.reason,
            "props": props,
        },
    }


def host_params(domain: Any, conn_meta: Any, sender: Any) -> CheckHostParams:
    """``check_host(domain, conn_meta, sender)``: without a sender the HELO identity is
    checked, and ``domain`` is that HELO name."""
    string_argument("kumo.spf.check_host", "domain", domain)
    if sender is not None and not isinstance(sender, str):
        sender = str(sender)  # an EnvelopeAddress from smtp_server_mail_from
    helo = _meta_string(conn_meta, "ehlo_domain") if sender is not None else domain
    return CheckHostParams(domain=domain, client_ip=_client_ip(conn_meta, "check_host"),
                           sender=sender or None, helo=helo,
                           receiver=_meta_string(conn_meta, "hostname"))


def message_params(msg: Any) -> CheckHostParams:
    """``check_msg(msg)``: the envelope sender's domain; the null sender checks the HELO."""
    sender_address = getattr(msg, "sender", None)
    if sender_address is None or not hasattr(msg, "get_meta"):
        raise ConfigError(f"kumo.spf.check_msg: expected a message, got {msg!r:.60}")
    helo = _meta_string(msg, "ehlo_domain")
    sender = None if sender_address.is_null else str(sender_address.email)
    domain = str(sender_address.domain) if sender is not None else (helo or "")
    return CheckHostParams(domain=domain, client_ip=_client_ip(msg, "check_msg"),
                           sender=sender, helo=helo, receiver=_meta_string(msg, "hostname"))


def make_spf_functions(resolvers: NamedResolvers) -> dict[str, Callable[..., Any]]:
    """The ``spf.*`` entries of ``kumo_register_policy_functions``."""

    @policy_function(table=False)
    async def check_host_fn(domain: Any, conn_meta: Any, sender: Any = None,
                            resolver_name: str | None = None) -> dict[str, Any]:
        """``kumo.spf.check_host(domain, conn_meta, sender, resolver)``: SPF for a HELO
        name (no sender) or a MAIL FROM address, from the connection's client IP."""
        params = host_params(domain, conn_meta, sender)
        result = await check_host(resolvers.get(resolver_name), params)
        return _output(result, params)

    @policy_function(table=False)
    async def check_msg(msg: Any, resolver_name: str | None = None) -> dict[str, Any]:
        """``kumo.spf.check_msg(msg, resolver)``: SPF for the message's envelope sender
        and the client that sent it."""
        params = message_params(msg)
        result = await check_host(resolvers.get(resolver_name), params)
        return _output(result, params)

    return {"spf.check_host": check_host_fn, "spf.check_msg": check_msg}
