"""A log sink that POSTs JSON arrays of log records to a URL, retrying with backoff."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import orjson

from kumocore.logs import LogRecord

log = logging.getLogger("kumocore_webhook_sink")

#: 4xx answers worth retrying; any other 4xx means the receiver will never take the batch.
_RETRYABLE_4XX = frozenset({408, 425, 429})


class WebhookSink:
    """Implements :class:`kumocore.logs.LogSink`. Stats: ``posted`` and ``dropped`` records,
    ``retries`` (POST attempts after the first)."""

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        batch_size: int = 100,
        meta: Sequence[str] = (),
        headers: Sequence[str] = (),
        http_headers: Mapping[str, str] | None = None,
        max_attempts: int = 5,
        retry_interval: float = 1.0,
        max_retry_interval: float = 30.0,
        timeout: float = 10.0,
    ) -> None:
        self.name = name or f"webhook:{url}"
        self.url = url
        # Optional LogSink attributes: the dispatcher hands us at most batch_size records
        # per call and captures the headers we select.
        self.batch_size = batch_size
        self.header_names = tuple(headers)
        self.meta = tuple(meta)
        self.http_headers = {"Content-Type": "application/json", **(http_headers or {})}
        self.max_attempts = max_attempts
        self.retry_interval = retry_interval
        self.max_retry_interval = max_retry_interval
        self.timeout = timeout
        self.posted = 0
        self.dropped = 0
        self.retries = 0
        self._session: aiohttp.ClientSession | None = None

    def stats(self) -> dict[str, int]:
        return {"posted": self.posted, "dropped": self.dropped, "retries": self.retries}

    async def write_batch(self, records: Sequence[LogRecord]) -> None:
        for start in range(0, len(records), self.batch_size):
            chunk = records[start:start + self.batch_size]
            body = orjson.dumps([r.to_json(self.meta, self.header_names) for r in chunk])
            await self._post(body, len(chunk))

    async def _post(self, body: bytes, count: int) -> None:
        if self._session is None:  # created lazily: it must belong to the running loop
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout))
        delay = self.retry_interval
        for attempt in range(1, self.max_attempts + 1):
            try:
                async with self._session.post(
                        self.url, data=body, headers=self.http_headers) as response:
                    if 200 <= response.status < 300:
                        self.posted += count
                        return
                    error = f"HTTP {response.status}"
                    if 400 <= response.status < 500 and response.status not in _RETRYABLE_4XX:
                        break
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = repr(exc)
            if attempt < self.max_attempts:
                self.retries += 1
                log.info("webhook POST failed (%s), retry %d in %.2fs", error, attempt, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_interval)
        # Dropped, not raised: the dispatcher would only count it as an error anyway, and
        # our own counter says exactly how many records were lost.
        self.dropped += count
        log.warning("webhook %s: dropping %d records after %s", self.url, count, error)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def webhook_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``configure_webhook_sink`` options into WebhookSink keyword arguments."""
    from kumocore import ConfigError

    known = {"url", "name", "batch_size", "meta", "headers", "http_headers", "max_attempts",
             "retry_interval", "max_retry_interval", "timeout"}
    for key in sorted(set(options) - known):
        raise ConfigError(f"configure_webhook_sink: unknown option {key!r}")
    url = options.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError("configure_webhook_sink: url is required (an http:// or https:// URL)")
    kwargs = dict(options)
    for key in ("meta", "headers"):
        value = kwargs.get(key, ())
        if isinstance(value, Mapping):  # a Lua array table may arrive as {1: .., 2: ..}
            value = [value[k] for k in sorted(value)]
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"configure_webhook_sink: {key}: expected a list of names")
        kwargs[key] = tuple(value)
    for key in ("batch_size", "max_attempts"):
        value = kwargs.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"configure_webhook_sink: {key}: expected a positive integer")
    for key in ("retry_interval", "max_retry_interval", "timeout"):
        value = kwargs.get(key, 1.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"configure_webhook_sink: {key}: expected positive seconds")
    return kwargs
