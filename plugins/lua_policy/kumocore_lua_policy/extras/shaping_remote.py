"""Shaping data over HTTP: the ``http://`` and ``https://`` entries of
``kumo.shaping.load`` (KumoMTA's nodes load a tsa-daemon's
``/get_config_v1/shaping.toml`` this way, and shared rules from a web server).

A URL whose path ends in ``.toml`` is TOML, anything else JSON, as for files. Each fetch is
bounded: ``http_timeout`` for the whole request (KumoMTA's default 5 s), at most
:data:`MAX_REMOTE_BYTES` of body, a ``200`` only. What a failure does is the load's
``remote_load`` severity (``Ignore`` by default, as KumoMTA: the other sources still load);
``skip_remote = true`` skips these entries (``kumocore validate`` of a node whose tsa-daemon
is not running).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from kumocore.config.duration import duration_seconds
from kumocore_lua_policy.extras.datafile import DataFileError, parse_data

#: Options of ``kumo.shaping.load`` about HTTP entries (besides ``remote_load``).
REMOTE_OPTIONS = ("skip_remote", "http_timeout")
#: Bytes of shaping data one URL may send (the community rules are about 100 KB).
MAX_REMOTE_BYTES = 16 * 1024 * 1024
DEFAULT_HTTP_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class RemoteOptions:
    skip: bool = False
    timeout: float = DEFAULT_HTTP_TIMEOUT

    @classmethod
    def parse(cls, helper: str, options: Mapping[str, Any]) -> RemoteOptions:
        skip = options.get("skip_remote", False)
        if not isinstance(skip, bool):
            raise DataFileError(helper, "options", "skip_remote",
                                f"expected a boolean, got {skip!r}")  # fmt: skip
        timeout = options.get("http_timeout")
        if timeout is None:
            return cls(skip)
        try:
            seconds = duration_seconds(timeout)
        except ValueError as exc:
            raise DataFileError(helper, "options", "http_timeout", str(exc)) from None
        return cls(skip, seconds)


async def fetch_data(helper: str, url: str, timeout: float) -> dict[str, Any]:
    """The table at ``url``; :class:`DataFileError` naming the URL and what went wrong."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http,
            http.get(url) as reply,
        ):
            if reply.status != 200:
                raise DataFileError(helper, url, "", f"HTTP status {reply.status}")
            raw = await _bounded(reply, helper, url)
    except TimeoutError:
        raise DataFileError(helper, url, "", f"no answer within {timeout:g}s") from None
    except aiohttp.ClientError as exc:
        raise DataFileError(helper, url, "", f"cannot fetch: {exc}") from None
    return parse_data(helper, URL(url).path, raw)


async def _bounded(reply: aiohttp.ClientResponse, helper: str, url: str) -> bytes:
    if (reply.content_length or 0) > MAX_REMOTE_BYTES:
        raise DataFileError(helper, url, "", f"larger than {MAX_REMOTE_BYTES} bytes")
    body = bytearray()
    async for chunk in reply.content.iter_chunked(65536):
        body += chunk
        if len(body) > MAX_REMOTE_BYTES:
            raise DataFileError(helper, url, "", f"larger than {MAX_REMOTE_BYTES} bytes")
    return bytes(body)
