"""``kumo.amqp.build_client(URI)``: KumoMTA's older AMQP client object (deprecated there in
favour of ``kumo.amqp.basic_publish``, still in operators' policies and KumoMTA's docs).

The client owns one connection and one channel, opened from an ``amqp://`` or ``amqps://``
URI within 20 s (KumoMTA's connect timeout). As in KumoMTA, the channel does not ask the
broker for publisher confirms, so ``client:publish{...}:wait()`` reports
``{status = 'NotRequested'}`` once the message is written: a policy that needs the broker's
word uses ``basic_publish``. ``client:publish_with_timeout(params, millis)`` publishes and
waits within the time given; ``client:close()`` closes the channel and the connection, and a
second close is an error.

``params``: ``routing_key`` and ``payload`` (required strings), ``exchange`` (default ``''``,
the default exchange), ``options`` (``mandatory``; ``immediate`` is refused: RabbitMQ
closes the channel for it) and ``properties`` (the AMQP basic properties by their names,
as KumoMTA's serde form of them; ``type`` may be given as ``kind``). Unknown keys are
errors, never ignored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from kumocore.errors import ConfigError
from kumocore.policy.policyfn import policy_function

_FN = "kumo.amqp.build_client"
CONNECT_TIMEOUT = 20.0
_PARAMS = frozenset({"routing_key", "payload", "exchange", "options", "properties"})
_OPTIONS = frozenset({"mandatory", "immediate"})
#: KumoMTA's property names → aio-pika's Message arguments.
_PROPERTIES = {"content_type": "content_type", "content_encoding": "content_encoding",
               "headers": "headers", "delivery_mode": "delivery_mode", "priority": "priority",
               "correlation_id": "correlation_id", "reply_to": "reply_to",
               "expiration": "expiration", "message_id": "message_id",
               "timestamp": "timestamp", "kind": "type", "type": "type",
               "user_id": "user_id", "app_id": "app_id"}  # fmt: skip

NOT_REQUESTED = {"status": "NotRequested", "reply_code": None, "reply_text": None}


class PublishConfirm:
    """What ``client:publish`` returns: ``confirm:wait()`` gives the disposition once."""

    __kumo_methods__ = True

    def __init__(self) -> None:
        self._taken = False

    async def wait(self) -> dict[str, Any]:
        if self._taken:
            raise ConfigError("amqp confirm:wait(): the confirmation was already taken")
        self._taken = True
        return dict(NOT_REQUESTED)


class AmqpUriClient:
    """What ``kumo.amqp.build_client`` returns."""

    __kumo_methods__ = True

    def __init__(self, connection: Any, channel: Any) -> None:
        self._connection, self._channel = connection, channel
        self._closed = False

    async def publish(self, params: Mapping[str, Any]) -> PublishConfirm:
        message, exchange, routing_key, mandatory = _parse(params, "publish")
        if self._closed:
            raise ConfigError("amqp client:publish: the client was closed")
        target = self._channel.default_exchange
        if exchange:
            target = await self._channel.get_exchange(exchange, ensure=False)
        await target.publish(message, routing_key=routing_key, mandatory=mandatory)
        return PublishConfirm()

    async def publish_with_timeout(self, params: Mapping[str, Any], millis: Any) -> Any:
        if isinstance(millis, bool) or not isinstance(millis, int) or millis < 0:
            raise ConfigError("amqp client:publish_with_timeout: the timeout is a whole "
                              f"number of milliseconds, got {millis!r}")  # fmt: skip
        async with asyncio.timeout(millis / 1000):
            confirm = await self.publish(params)
            return await confirm.wait()

    async def close(self) -> None:
        if self._closed:
            raise ConfigError("amqp client:close(): the client is already closed")
        self._closed = True
        await self._channel.close()
        await self._connection.close()


def _parse(params: Mapping[str, Any], method: str) -> tuple[Any, str, str, bool]:
    import aio_pika

    where = f"amqp client:{method}"
    for unknown in sorted(set(params) - _PARAMS):
        raise ConfigError(f"{where}: unknown option {unknown!r}")
    routing_key, payload = params.get("routing_key"), params.get("payload")
    if not isinstance(routing_key, str):
        raise ConfigError(f"{where}: routing_key is required (a string)")
    if not isinstance(payload, (str, bytes)):
        raise ConfigError(f"{where}: payload is required (a string)")
    exchange = params.get("exchange", "")
    if not isinstance(exchange, str):
        raise ConfigError(f"{where}: exchange must be a string")
    options = _table(params.get("options"), f"{where}: options")
    for unknown in sorted(set(options) - _OPTIONS):
        raise ConfigError(f"{where}: options.{unknown}: unknown option")
    if options.get("immediate"):
        raise ConfigError(f"{where}: options.immediate is not supported (RabbitMQ closes "
                          "the channel for it)")  # fmt: skip
    properties = _table(params.get("properties"), f"{where}: properties")
    for unknown in sorted(set(properties) - set(_PROPERTIES)):
        raise ConfigError(f"{where}: properties.{unknown}: unknown property")
    data = payload.encode() if isinstance(payload, str) else payload
    try:
        message = aio_pika.Message(
            data, **{_PROPERTIES[name]: value for name, value in properties.items()})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: properties: {exc}") from exc
    return message, exchange, routing_key, bool(options.get("mandatory", False))


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table")
    return value


async def build_client(uri: Any) -> AmqpUriClient:
    """Connect to the broker at ``uri`` and open a channel (no publisher confirms)."""
    try:
        import aio_pika
    except ImportError as exc:  # an optional extra
        raise ConfigError(f"{_FN} needs aio-pika: pip install 'kumocore[loghooks]'") from exc
    if not isinstance(uri, str) or not uri.startswith(("amqp://", "amqps://")):
        raise ConfigError(f"{_FN}: URI must be an amqp:// or amqps:// string, got {uri!r}")
    connection = await aio_pika.connect(uri, timeout=CONNECT_TIMEOUT)
    try:
        channel = await connection.channel(publisher_confirms=False)
    except BaseException:
        await connection.close()
        raise
    return AmqpUriClient(connection, channel)


def make_build_client_function() -> dict[str, Callable[..., Any]]:
    """The ``amqp.build_client`` entry of ``kumo_register_policy_functions``."""

    @policy_function(table=False)
    async def build(uri: Any) -> AmqpUriClient:
        return await build_client(uri)

    return {"amqp.build_client": build}
