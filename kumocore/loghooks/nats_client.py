"""``kumo.nats.connect { servers = {...}, ... }``: publish log records to NATS (nats-py).

A client publishes with ``client:publish { subject, payload, headers?, await_ack? }``;
with ``await_ack`` (the default, as in KumoMTA) it goes through JetStream and returns the
server's acknowledgement (``stream``, ``sequence``, ``domain``, ``duplicate``), so a
record counts as delivered only once a stream stored it. Errors (server down, no stream
for the subject) raise: inside a ``custom_lua`` sender that defers the record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from kumocore.config.vault import is_vault_source, read_vault_secret
from kumocore.errors import ConfigError
from kumocore.policy.policyfn import policy_function
from kumocore.policy.secrets import load_secret

_FN = "kumo.nats.connect"
_OPTIONS = frozenset({"servers", "name", "auth", "no_echo", "max_reconnects",
                      "connection_timeout", "ping_interval", "inbox_prefix",
                      "request_timeout", "retain_servers_order"})
_PUBLISH = frozenset({"subject", "payload", "headers", "await_ack"})


def _servers(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, Mapping):
        value = [value[k] for k in sorted(value)]
    if not isinstance(value, list) or not value or not all(isinstance(s, str) for s in value):
        raise ConfigError(f"{_FN}: servers: expected a list of 'host:port' addresses")
    return [s if "://" in s else f"nats://{s}" for s in value]


def _seconds(value: Any, key: str) -> float:
    from kumocore.config.duration import parse_duration

    return parse_duration(value, key=f"{_FN}: {key}")


def connect_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """nats-py ``connect`` keyword arguments for KumoMTA's options (checked)."""
    for unknown in sorted(set(options) - _OPTIONS):
        raise ConfigError(f"{_FN}: unknown or unsupported option {unknown!r} "
                          f"(supported: {', '.join(sorted(_OPTIONS))})")
    kwargs: dict[str, Any] = {"servers": _servers(options.get("servers"))}
    if options.get("name") is not None:
        kwargs["name"] = str(options["name"])
    if options.get("no_echo"):
        kwargs["no_echo"] = True
    if options.get("max_reconnects") is not None:
        count = int(options["max_reconnects"])
        kwargs["max_reconnect_attempts"] = -1 if count == 0 else count  # 0: no limit
    if options.get("connection_timeout") is not None:
        kwargs["connect_timeout"] = _seconds(options["connection_timeout"], "connection_timeout")
    if options.get("ping_interval") is not None:
        kwargs["ping_interval"] = _seconds(options["ping_interval"], "ping_interval")
    if options.get("inbox_prefix") is not None:
        kwargs["inbox_prefix"] = str(options["inbox_prefix"])
    if options.get("retain_servers_order"):
        kwargs["dont_randomize"] = True
    auth = options.get("auth")
    if auth is not None:
        if not isinstance(auth, Mapping) or not ({"token"} <= set(auth)
                                                 or {"username", "password"} <= set(auth)):
            raise ConfigError(f"{_FN}: auth: give either username and password, or token "
                              "(each a keysource)")
        if "token" in auth:
            kwargs["token"] = load_secret(auth["token"]).decode()
        else:
            kwargs["user"] = load_secret(auth["username"]).decode()
            kwargs["password"] = load_secret(auth["password"]).decode()
    return kwargs


class NatsClient:
    """What ``kumo.nats.connect`` returns."""

    __kumo_methods__ = True

    def __init__(self, connection: Any, request_timeout: float) -> None:
        self._nc = connection
        self._timeout = request_timeout

    async def publish(self, params: Mapping[str, Any]) -> dict[str, Any] | None:
        for unknown in sorted(set(params) - _PUBLISH):
            raise ConfigError(f"nats client:publish: unknown option {unknown!r}")
        subject, payload = params.get("subject"), params.get("payload")
        if not isinstance(subject, str) or not subject:
            raise ConfigError("nats client:publish: subject is required (a string)")
        if not isinstance(payload, (str, bytes)):
            raise ConfigError("nats client:publish: payload is required (a string)")
        data = payload.encode() if isinstance(payload, str) else payload
        headers = {str(k): str(v) for k, v in (params.get("headers") or {}).items()} or None
        if params.get("await_ack", True):
            ack = await self._nc.jetstream(timeout=self._timeout).publish(
                subject, data, headers=headers)
            return {"stream": ack.stream, "sequence": ack.seq, "domain": ack.domain,
                    "duplicate": bool(ack.duplicate)}
        await self._nc.publish(subject, data, headers=headers)
        await self._nc.flush(timeout=self._timeout)
        return None

    async def close(self) -> None:
        if not self._nc.is_closed:
            await self._nc.close()


async def nats_connect(options: Mapping[str, Any]) -> NatsClient:
    """Connect with KumoMTA's options; raises when no server answers."""
    try:
        from nats.aio.client import Client
    except ImportError as exc:  # an optional extra
        raise ConfigError(f"{_FN} needs nats-py: pip install 'kumocore[loghooks]'") from exc
    kwargs = connect_options(await _auth_from_vault(options))
    kwargs.setdefault("connect_timeout", 5.0)
    # A sender session is short: when no server answers, fail now (the records are
    # deferred and retried with the queue's schedule) instead of nats-py's default of
    # retrying for minutes inside connect.
    kwargs.setdefault("max_reconnect_attempts", 0)
    kwargs["allow_reconnect"] = False
    timeout = 10.0
    if options.get("request_timeout") is not None:
        timeout = _seconds(options["request_timeout"], "request_timeout")
    connection = Client()
    try:
        # nats-py keeps retrying a refused initial connect whatever the reconnect
        # options say: bound the whole attempt ourselves.
        async with asyncio.timeout(kwargs["connect_timeout"] * 2):
            await connection.connect(**kwargs, error_cb=_quiet)
    except TimeoutError:
        await connection.close()
        raise ConnectionError(f"{_FN}: no NATS server answered at "
                              f"{', '.join(kwargs['servers'])}") from None
    except Exception:
        await connection.close()  # a refused authorization left its socket open
        raise
    return NatsClient(connection, timeout)


async def _auth_from_vault(options: Mapping[str, Any]) -> Mapping[str, Any]:
    """``options`` with each ``auth`` key source in HashiCorp Vault read (inline after)."""
    auth = options.get("auth")
    if not isinstance(auth, Mapping) or not any(is_vault_source(v) for v in auth.values()):
        return options
    read = {
        name: {"key_data": await read_vault_secret(value, f"{_FN}: auth.{name}")}
        if is_vault_source(value)
        else value
        for name, value in auth.items()
    }
    return {**options, "auth": read}


async def _quiet(_error: Exception) -> None:
    """nats-py's error callback: failures reach the caller as exceptions instead."""


def make_nats_functions() -> dict[str, Callable[..., Any]]:
    """The ``nats.connect`` entry of ``kumo_register_policy_functions``."""

    @policy_function(table=True)
    async def connect(**options: Any) -> NatsClient:
        return await nats_connect(options)

    return {"nats.connect": connect}
