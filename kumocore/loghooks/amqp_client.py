"""``kumo.amqp.basic_publish { routing_key, payload, connection = {...} }`` (aio-pika).

Each call publishes one message on a pooled connection (one per distinct ``connection``
table) over a channel with publisher confirms, so it returns only once the broker took
the message — a ``custom_lua`` sender built on it counts a record delivered only then.
A broker that is down, refuses the login or nacks raises: the record is deferred and
retried with the queue's schedule. KumoMTA's deprecated ``kumo.amqp.build_client`` is
in :mod:`kumocore.loghooks.amqp_uri_client`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from kumocore.errors import ConfigError
from kumocore.policy.policyfn import policy_function

_FN = "kumo.amqp.basic_publish"
_PARAMS = frozenset({"routing_key", "payload", "exchange", "connection", "app_id",
                     "content_encoding", "content_type", "correlation_id", "delivery_mode",
                     "expiration", "headers", "message_id", "message_type", "priority",
                     "reply_to", "user_id", "mandatory"})
_CONNECTION = frozenset({"host", "port", "username", "password", "vhost",
                         "connection_name", "heartbeat", "connect_timeout",
                         "publish_timeout"})
_PROPERTIES = ("app_id", "content_encoding", "content_type", "correlation_id",
               "delivery_mode", "expiration", "headers", "message_id", "message_type",
               "priority", "reply_to", "user_id")


def _seconds(value: Any, key: str) -> float:
    from kumocore.config.duration import parse_duration

    return parse_duration(value, key=f"{_FN}: connection.{key}")


def _connection_key(connection: Any) -> tuple[tuple[str, Any], ...]:
    if not isinstance(connection, Mapping) or not isinstance(connection.get("host"), str):
        raise ConfigError(f"{_FN}: connection: a table with at least host is required")
    for unknown in sorted(set(connection) - _CONNECTION):
        raise ConfigError(f"{_FN}: connection.{unknown}: unknown or unsupported option "
                          f"(supported: {', '.join(sorted(_CONNECTION))})")
    return tuple(sorted((str(k), v) for k, v in connection.items()))


class _Pool:
    """One robust connection and confirming channel per connection table."""

    def __init__(self) -> None:
        self._channels: dict[tuple[tuple[str, Any], ...], Any] = {}
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Future[Any]] = set()

    async def channel(self, key: tuple[tuple[str, Any], ...]) -> Any:
        import aio_pika

        async with self._lock:
            channel = self._channels.get(key)
            if channel is not None and not channel.is_closed:
                return channel
            options = dict(key)
            timeout = _seconds(options.get("connect_timeout", 10), "connect_timeout")
            connection = await aio_pika.connect(
                host=options["host"], port=int(options.get("port", 5672)),
                login=str(options.get("username", "guest")),
                password=str(options.get("password", "guest")),
                virtualhost=str(options.get("vhost", "/")),
                timeout=timeout,
                client_properties={"connection_name": str(
                    options.get("connection_name", "kumocore"))},
            )
            channel = await connection.channel(publisher_confirms=True)
            self._channels[key] = channel
            return channel

    def discard(self, key: tuple[tuple[str, Any], ...]) -> None:
        channel = self._channels.pop(key, None)
        if channel is not None:
            task = asyncio.ensure_future(channel.get_underlay_connection().close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)


_POOL = _Pool()


async def basic_publish(params: Mapping[str, Any]) -> None:
    """Publish one message and wait for the broker's confirmation."""
    try:
        import aio_pika
    except ImportError as exc:  # an optional extra
        raise ConfigError(f"{_FN} needs aio-pika: pip install 'kumocore[loghooks]'") from exc
    for unknown in sorted(set(params) - _PARAMS):
        raise ConfigError(f"{_FN}: unknown or unsupported option {unknown!r}")
    routing_key, payload = params.get("routing_key"), params.get("payload")
    if not isinstance(routing_key, str):
        raise ConfigError(f"{_FN}: routing_key is required (a string)")
    if not isinstance(payload, (str, bytes)):
        raise ConfigError(f"{_FN}: payload is required (a string)")
    key = _connection_key(params.get("connection"))
    publish_timeout = _seconds(dict(key).get("publish_timeout", 30), "publish_timeout")
    properties = {name: params[name] for name in _PROPERTIES if params.get(name) is not None}
    message = aio_pika.Message(payload.encode() if isinstance(payload, str) else payload,
                               **properties)
    try:
        channel = await _POOL.channel(key)
        exchange = channel.default_exchange
        if params.get("exchange"):
            exchange = await channel.get_exchange(str(params["exchange"]), ensure=False)
        await exchange.publish(message, routing_key=routing_key,
                               mandatory=bool(params.get("mandatory", False)),
                               timeout=publish_timeout)
    except Exception:
        _POOL.discard(key)  # a broken connection is not reused
        raise


def make_amqp_functions() -> dict[str, Callable[..., Any]]:
    """The ``amqp.*`` entries of ``kumo_register_policy_functions``."""
    from kumocore.loghooks.amqp_uri_client import make_build_client_function


    @policy_function(table=True)
    async def publish(**params: Any) -> None:
        await basic_publish(params)

    return {"amqp.basic_publish": publish, **make_build_client_function()}
