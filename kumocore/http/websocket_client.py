"""``kumo.http.connect_websocket(URL)``: a websocket client for policy tasks.

As in KumoMTA (``crates/mod-http``), it returns two values: the stream and the handshake
response (a :class:`~kumocore.http.client.HttpResponse`, status 101, empty body). The
stream offers ``stream:recv()`` (the next message: text as a string, binary as a byte
string; nil once the peer has closed) and ``stream:recv_batch(duration)`` (the messages
that arrive within ``duration``, as a list: empty when none came; an error when the peer
closed before any came). kumocore adds ``stream:close()``; a stream dropped without it is
closed when it is collected.

Bounds: the handshake must finish within :data:`CONNECT_TIMEOUT`; a message larger than
:data:`MAX_MESSAGE_SIZE` (KumoMTA's websocket library's default) fails that ``recv`` and
closes the stream. Pings are answered and pongs consumed by aiohttp.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
from yarl import URL

from kumocore.config.duration import duration_seconds
from kumocore.errors import ConfigError
from kumocore.http.client import HttpResponse, release_session
from kumocore.policy.policyfn import MultipleValues, policy_function, string_argument

_FN = "kumo.http.connect_websocket"
#: Seconds the TCP connect, TLS and HTTP upgrade may take together.
CONNECT_TIMEOUT = 60.0
#: The largest message accepted, in bytes (64 MiB, tungstenite's default in KumoMTA).
MAX_MESSAGE_SIZE = 64 << 20

_CLOSING = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)


class WebSocketStream:
    """What ``kumo.http.connect_websocket`` returns first."""

    __kumo_methods__ = True

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
        handshake: aiohttp.ClientResponse | None,
        limit: int,
    ) -> None:
        self._url, self._session, self._ws, self._limit = url, session, ws, limit
        # One reader at a time: aiohttp refuses concurrent receive() calls.
        self._lock = asyncio.Lock()
        # Policies loop on recv() in a task and rarely close: a stream dropped unclosed
        # drops its connection when collected (no close frame: there is no loop to await).
        weakref.finalize(self, _drop, session, handshake)

    async def _next(self) -> str | bytes | None:
        """The next data message; None once the stream is closed."""
        async with self._lock:
            if self._ws.closed:
                return None
            msg = await self._ws.receive()
        if msg.type is aiohttp.WSMsgType.TEXT:
            return str(msg.data)
        if msg.type is aiohttp.WSMsgType.BINARY:
            return bytes(msg.data)
        if msg.type in _CLOSING:
            return None
        # ERROR: a protocol violation or an oversized message; aiohttp has closed it.
        await self.close()
        if getattr(msg.data, "code", None) == aiohttp.WSCloseCode.MESSAGE_TOO_BIG:
            raise ConfigError(f"{_FN}: {self._url}: a message is larger than {self._limit} bytes")
        raise ConfigError(f"{_FN}: {self._url}: {msg.data}")

    async def recv(self) -> str | bytes | None:
        """The next message, or nil once the peer has closed the stream."""
        return await self._next()

    async def recv_batch(self, duration: Any) -> list[str | bytes]:
        """The messages that arrive within ``duration`` (seconds or ``'10s'``)."""
        try:
            wait = float(duration_seconds(duration))
        except (ValueError, TypeError, ConfigError) as exc:
            raise ConfigError(f"{_FN}: recv_batch: invalid duration {duration!r}") from exc
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        batch: list[str | bytes] = []
        while (left := deadline - loop.time()) > 0:
            try:
                message = await asyncio.wait_for(self._next(), left)
            except TimeoutError:
                break
            if message is None:
                if not batch:
                    raise ConfigError(f"{_FN}: {self._url}: websocket closed")
                break
            batch.append(message)
        return batch

    async def close(self) -> None:
        """Close the stream (a close frame to the peer) and its connection."""
        await self._ws.close()
        await self._session.close()


def _drop(session: aiohttp.ClientSession, handshake: aiohttp.ClientResponse | None) -> None:
    if handshake is not None:
        handshake.close()  # releases the upgraded connection, closing its socket
    release_session(session)


def _check_url(url: Any) -> str:
    if isinstance(url, bytes):
        url = url.decode("utf-8", "replace")
    text = string_argument(_FN, "URL", url)
    if URL(text).scheme not in ("ws", "wss"):
        raise ConfigError(f"{_FN}: {text!r} is not a ws:// or wss:// URL")
    return text


async def connect_websocket(url: Any) -> MultipleValues:
    """Connect to ``url``; (stream, handshake response)."""
    url = _check_url(url)
    handshakes: list[aiohttp.ClientResponse] = []

    async def on_request_end(
        _session: Any, _ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        handshakes.append(params.response)

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_request_end)
    session = aiohttp.ClientSession(trace_configs=[trace])
    limit = MAX_MESSAGE_SIZE
    try:
        # aiohttp refuses a message of max_msg_size bytes: one more lets the limit itself in.
        ws = await asyncio.wait_for(
            session.ws_connect(url, max_msg_size=limit + 1, autoping=True), CONNECT_TIMEOUT
        )
    except TimeoutError as exc:
        await session.close()
        raise ConfigError(f"{_FN}: {url}: no handshake within {CONNECT_TIMEOUT:g} s") from exc
    except (aiohttp.ClientError, OSError) as exc:
        await session.close()
        raise ConfigError(f"{_FN}: {url}: {exc}") from exc
    except BaseException:  # cancelled (a task stopped, the node shutting down) mid-handshake
        await asyncio.shield(session.close())
        raise
    handshake = handshakes[-1] if handshakes else None
    stream = WebSocketStream(url, session, ws, handshake, limit)
    return MultipleValues((stream, _handshake_response(handshake)))


def _handshake_response(handshake: aiohttp.ClientResponse | None) -> HttpResponse:
    if handshake is None:  # not expected: aiohttp traces every request it ends
        return HttpResponse(101, "Switching Protocols", {}, b"", None)
    headers = {name.lower(): value for name, value in handshake.headers.items()}
    return HttpResponse(handshake.status, handshake.reason, headers, b"", None)


def make_websocket_functions() -> dict[str, Callable[..., Any]]:
    """The ``http.connect_websocket`` entry of ``kumo_register_policy_functions``."""

    @policy_function(table=False)
    async def connect(url: Any) -> MultipleValues:
        """Connect to a ``ws://`` or ``wss://`` URL:
        ``local stream, response = kumo.http.connect_websocket 'wss://...'``; the stream's
        methods are ``recv()``, ``recv_batch(duration)`` and ``close()``."""
        return await connect_websocket(url)

    return {"http.connect_websocket": connect}
