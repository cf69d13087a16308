"""The wire side of ``require 'redis'``: command arguments in, replies out, as KumoMTA's
mod-redis converts them.

Arguments (``conn:query('INCRBY', 'k', 2)``): strings as they are; numbers in their
decimal form; booleans ``1``/``0``; nil adds nothing; an array table adds each item, any
other table each key and value (keys in sorted order), nested tables likewise.

Replies: an integer is an integer; a bulk string a (byte) string; the status ``OK`` is
``true`` and any other status (``PONG``, ``QUEUED``) its text; a nil reply is nil; an
array is a table of its items in which, as in KumoMTA (its tables are filled by ``push``),
a nil item leaves no hole — ``MGET`` of a missing key gives a shorter array; an error
reply, even one inside an array (``EXEC``), fails the query with the server's text.

redis-py's own parser cannot tell a status from a bulk string (``+OK`` and ``$2 OK`` both
arrive as ``b"OK"``), so :class:`StatusAwareParser` marks statuses. It speaks RESP2 only;
``redis.open`` refuses a URL asking for RESP3.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis._parsers.resp2 import _AsyncRESP2Parser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ResponseError


class RedisQueryError(ValueError):
    """A query failed; the text is what the policy's ``pcall`` sees."""


class Status(bytes):
    """A simple-string (status) reply, as opposed to a bulk string."""


class ServerError(ResponseError):
    """An error reply, with the server's whole line (``ERR ...``, ``WRONGTYPE ...``)."""


class StatusAwareParser(_AsyncRESP2Parser):
    """RESP2 replies with statuses marked (:class:`Status`) and error lines kept whole.

    Errors that redis-py's connection handshake relies on (authentication, a busy or
    loading server: its ``ConnectionError`` family and the special ``ResponseError``
    classes) are passed on as redis-py makes them."""

    async def _read_response(self, disable_decoding: bool = False) -> Any:
        raw = await self._readline()
        kind, rest = raw[:1], raw[1:]
        if kind == b"+":
            return Status(rest)
        if kind == b"-":
            return self._error(rest.decode("utf-8", errors="replace"))
        if kind == b":":
            return int(rest)
        if kind in (b"$", b"*"):
            size = int(rest)
            if size < 0:
                return None
            if kind == b"$":
                return await self._read(size)
            return [await self._read_response(disable_decoding) for _ in range(size)]
        raise InvalidResponse(f"Protocol Error: {raw!r}")

    def _error(self, line: str) -> ResponseError:
        # redis-py's own mapping of error codes to its classes (untyped in redis-py).
        error = self.parse_error(line)  # type: ignore[no-untyped-call]
        if isinstance(error, RedisConnectionError):
            self._clear()  # type: ignore[no-untyped-call]
            raise error
        return ServerError(line) if type(error) is ResponseError else error


def command_args(args: tuple[Any, ...]) -> list[str | bytes]:
    """The words of a command from ``conn:query``'s arguments (see the module docstring)."""
    words: list[str | bytes] = []
    for arg in args:
        _flatten(arg, words)
    if not words:
        raise RedisQueryError("conn:query needs a command, e.g. conn:query('PING')")
    return words


def _flatten(value: Any, words: list[str | bytes]) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        words.append("1" if value else "0")
    elif isinstance(value, str | bytes):
        words.append(value)
    elif isinstance(value, int | float):
        words.append(repr(value))
    elif isinstance(value, Mapping):
        for key in sorted(value, key=str):
            _flatten(key, words)
            _flatten(value[key], words)
    elif isinstance(value, list | tuple):
        for item in value:
            _flatten(item, words)
    else:
        raise RedisQueryError(f"cannot send a {type(value).__name__} to redis")


def reply_value(reply: Any) -> Any:
    """A parsed reply as the policy sees it (see the module docstring)."""
    if isinstance(reply, ResponseError):
        raise RedisQueryError(error_text(reply))
    if isinstance(reply, Status):
        return True if reply == b"OK" else _text(bytes(reply))
    if isinstance(reply, bytes):
        return _text(reply)
    if isinstance(reply, list):
        items = (reply_value(item) for item in reply)
        return [item for item in items if item is not None]
    return reply  # an integer, or None


def error_text(error: ResponseError) -> str:
    """An error reply as the policy reads it: the server's line."""
    if isinstance(error, ServerError):
        return str(error)
    return f"{type(error).__name__}: {error}"  # redis-py took the code off (NOSCRIPT...)


def _text(raw: bytes) -> str | bytes:
    """A str when UTF-8 (the same Lua string, handier in Python policies), else bytes."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw
