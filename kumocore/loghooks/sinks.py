"""Log sinks for Python policies and plugins: webhook, AMQP and NATS.

Return them from ``kumo_register_log_sinks`` (a Python policy module is a plugin, so it
can define that hook). Each is fed by the log dispatcher: batched, retried with backoff
until the target takes the batch, and a message with a final outcome stays spooled until
its record is written. Unlike a ``configure_log_hook`` queue, records waiting here are in
memory: a kill -9 while the target is down loses the ones not yet written (see
docs/logging.md). A raise from ``write_batch`` makes the dispatcher retry the whole
batch, so a target may see a record twice (at-least-once).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kumocore.logs.record import LogRecord


class _RecordSink:
    """Selection of meta and headers shared by the sinks below."""

    def __init__(self, name: str, *, meta: Sequence[str] = (), headers: Sequence[str] = (),
                 batch_size: int = 100) -> None:
        self.name = name
        self.meta = tuple(meta)
        self.header_names = tuple(headers)
        self.batch_size = batch_size

    def encode(self, record: LogRecord) -> bytes:
        return record.to_json_bytes(self.meta, self.header_names)

    async def close(self) -> None:
        return None


class WebhookLogSink(_RecordSink):
    """POSTs each batch as a JSON array; anything but a 2xx is retried."""

    def __init__(self, name: str, url: str, *, timeout: float = 30.0, **options: Any) -> None:
        super().__init__(name, **options)
        self.url, self.timeout = url, timeout
        self._session: Any = None

    async def write_batch(self, records: Sequence[LogRecord]) -> None:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout))
        body = b"[" + b",".join(self.encode(r) for r in records) + b"]"
        async with self._session.post(
                self.url, data=body, headers={"Content-Type": "application/json"}) as response:
            if not 200 <= response.status < 300:
                text = (await response.text())[:200]
                raise RuntimeError(f"webhook answered {response.status}: {text}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class AmqpLogSink(_RecordSink):
    """Publishes each record with ``kumo.amqp.basic_publish`` semantics (confirmed)."""

    def __init__(self, name: str, *, routing_key: str, connection: Mapping[str, Any],
                 exchange: str = "", **options: Any) -> None:
        super().__init__(name, **options)
        self.params = {"routing_key": routing_key, "connection": dict(connection),
                       "exchange": exchange, "content_type": "application/json"}

    async def write_batch(self, records: Sequence[LogRecord]) -> None:
        from kumocore.loghooks.amqp_client import basic_publish

        for record in records:
            await basic_publish({**self.params, "payload": self.encode(record)})


class NatsLogSink(_RecordSink):
    """Publishes each record to a JetStream subject and waits for the stream's ack."""

    def __init__(self, name: str, *, servers: Sequence[str], subject: str,
                 connect: Mapping[str, Any] | None = None, **options: Any) -> None:
        super().__init__(name, **options)
        self.connect_options = {"servers": list(servers), **(connect or {})}
        self.subject = subject
        self._client: Any = None

    async def write_batch(self, records: Sequence[LogRecord]) -> None:
        from kumocore.loghooks.nats_client import nats_connect

        if self._client is None:
            self._client = await nats_connect(self.connect_options)
        try:
            for record in records:
                await self._client.publish({"subject": self.subject,
                                            "payload": self.encode(record)})
        except Exception:
            await self.close()  # reconnect on the retry
            raise

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.close()
            except Exception:  # closing a broken connection: nothing left to release
                pass


__all__ = ["AmqpLogSink", "NatsLogSink", "WebhookLogSink"]
