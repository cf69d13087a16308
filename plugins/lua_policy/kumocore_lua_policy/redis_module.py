"""KumoMTA's ``require 'redis'``: ``redis.open { node = 'redis://...', ... }`` and the
handle's ``conn:query(CMD, ...)``, on redis-py's asyncio client.

The options are KumoMTA's (``RedisConnKey`` in mod-redis, shared there with
``kumo.configure_redis_throttles``): ``node``, ``pool_size`` (10), ``connect_timeout``,
``wait_timeout`` (both 30 s, KumoMTA's documented defaults), ``response_timeout`` (none:
``BLPOP k 0`` may wait forever), ``recycle_timeout``, ``username``, ``password``,
``cluster``, ``read_from_replicas``. Unknown keys are refused by name.

As in KumoMTA, ``open`` only checks the options (nothing connects until the first query)
and handles opened with the same options share one pool of at most ``pool_size``
connections; a query waits up to ``wait_timeout`` for a free one, and a connection is
checked with ``PING`` (within ``recycle_timeout``) before it serves another query.
A cluster (several nodes, or ``cluster = true``) is refused: kumocore's client is
single-node for now.

Python policies: ``conn = kumo.redis.open(node=url)``, ``await conn.query("INCR", "k")``.

Each query is timed, from asking the pool for a connection until the reply, as KumoMTA's
``redis_operation_latency`` (operation ``query``; the service named as KumoMTA names it,
:func:`kumocore.redis_service_label`).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kumocore import ConfigError, policy_function, redis_service_label, timed_redis_operation
from kumocore.config.duration import duration_seconds

_NAME = "redis.open"
#: KumoMTA's documented defaults (seconds; connections).
DEFAULT_POOL_SIZE = 10
DEFAULT_CONNECT_TIMEOUT = 30.0
DEFAULT_WAIT_TIMEOUT = 30.0
_SCHEMES = ("redis", "rediss", "unix")


def _fail(key: str, problem: str) -> ConfigError:
    return ConfigError(f"{_NAME}: {key}: {problem}")


@dataclass(frozen=True, slots=True)
class RedisOpenOptions:
    """``redis.open``'s options, validated; equal options share one pool."""

    node: str
    pool_size: int = DEFAULT_POOL_SIZE
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT
    response_timeout: float | None = None
    recycle_timeout: float | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    read_from_replicas: bool = False

    @classmethod
    def from_table(cls, options: Mapping[str, Any]) -> RedisOpenOptions:
        known = set(cls.__dataclass_fields__) | {"cluster"}
        for key in options:
            if key not in known:
                raise _fail(str(key), f"unknown option (known: {', '.join(sorted(known))})")
        node = _node(options.get("node"))
        # KumoMTA: a list of nodes (even of one) means a cluster unless cluster = false.
        cluster = options.get("cluster", not isinstance(options.get("node"), str))
        if not isinstance(cluster, bool):
            raise _fail("cluster", f"expected true or false, got {cluster!r}")
        if cluster:
            raise _fail(
                "cluster",
                "redis cluster connections are not supported by kumocore "
                "yet; give one node = 'redis://host:port/'",
            )
        pool_size = options.get("pool_size", DEFAULT_POOL_SIZE)
        if not isinstance(pool_size, int) or isinstance(pool_size, bool) or pool_size < 1:
            raise _fail("pool_size", f"expected a whole number >= 1, got {pool_size!r}")
        durations = {key: _duration(key, options[key]) for key in
                     ("connect_timeout", "wait_timeout", "response_timeout", "recycle_timeout")
                     if options.get(key) is not None}  # fmt: skip
        for key in ("username", "password"):
            if options.get(key) is not None and not isinstance(options[key], str):
                raise _fail(key, f"expected a string, got {type(options[key]).__name__}")
        replicas = options.get("read_from_replicas", False)
        if not isinstance(replicas, bool):
            raise _fail("read_from_replicas", f"expected true or false, got {replicas!r}")
        return cls(node=node, pool_size=pool_size, username=options.get("username"),
                   password=options.get("password"), read_from_replicas=replicas,
                   **durations)  # fmt: skip

    @property
    def service(self) -> str:
        """The ``service`` label of ``redis_operation_latency`` (never the password)."""
        settings = (self.pool_size, self.connect_timeout, self.wait_timeout,
                    self.response_timeout, self.recycle_timeout, self.read_from_replicas)
        return redis_service_label((self.node,), self.username, settings)

    @property
    def label(self) -> str:
        """The node without its password, for error messages."""
        parts = urlsplit(self.node)
        if parts.password is None:
            return self.node
        host = parts.netloc.rsplit("@", 1)[1]
        return parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()


def _node(value: Any) -> str:
    if isinstance(value, list | tuple | Mapping):
        nodes = list(value.values() if isinstance(value, Mapping) else value)
        if len(nodes) != 1:
            raise _fail(
                "node",
                "several nodes make a redis cluster, which kumocore does not "
                "support yet; give one node = 'redis://host:port/'",
            )
        value = nodes[0]
    if not isinstance(value, str):
        raise _fail("node", f"expected a redis:// URL, got {value!r}")
    parts = urlsplit(value)
    if parts.scheme not in _SCHEMES:
        raise _fail("node", f"expected a redis://host:port/ URL, got {value!r}")
    protocol = parse_qs(parts.query).get("protocol", ["2"])[-1].lower()
    if protocol not in ("2", "resp2"):
        raise _fail("node", f"protocol={protocol} is not supported by kumocore yet (RESP2 only)")
    from redis.asyncio.connection import parse_url

    try:
        parse_url(value)
    except ValueError as exc:
        raise _fail("node", f"invalid URL: {exc}") from None
    return value


def _duration(key: str, value: Any) -> float:
    try:
        seconds = duration_seconds(value)
    except ValueError as exc:
        raise _fail(key, f"{exc}, got {value!r}") from None
    if seconds <= 0:
        raise _fail(key, f"must be more than zero, got {value!r}")
    return seconds


class RedisConnection:
    """The handle ``redis.open`` returns: ``conn:query(CMD, ...)``."""

    __kumo_methods__ = True

    def __init__(self, options: RedisOpenOptions, pools: RedisPools) -> None:
        self._options = options
        self._pools = pools
        self._service = options.service

    def __repr__(self) -> str:
        return f"<redis {self._options.label}>"

    async def query(self, *args: Any) -> Any:
        """Send one command; its reply converted as KumoMTA converts it (redis_replies)."""
        from kumocore_lua_policy.redis_replies import command_args

        words = command_args(args)  # a policy's bad argument is not a Redis operation
        return await timed_redis_operation(self._service, "query", self._send(words))

    async def _send(self, words: list[str | bytes]) -> Any:
        from redis.exceptions import RedisError, ResponseError, TimeoutError

        from kumocore_lua_policy.redis_replies import RedisQueryError, error_text, reply_value

        options = self._options
        pool = self._pools.pool(options)
        conn = await self._connection(pool)
        try:
            await self._recycle(conn)
            await conn.send_command(*words)
            reply = await conn.read_response()
        except TimeoutError as exc:
            if options.response_timeout is None:  # connecting timed out
                raise RedisQueryError(f"redis {options.label}: {exc}") from None
            # redis-py dropped the connection: a late reply cannot answer the next query.
            raise RedisQueryError(
                f"redis {options.label} did not answer {str(words[0]).upper()} within "
                f"response_timeout ({options.response_timeout:g}s)"
            ) from None
        except ResponseError as exc:  # the server's error reply
            raise RedisQueryError(error_text(exc)) from None
        except RedisError as exc:
            raise RedisQueryError(f"redis {options.label}: {exc}") from None
        finally:
            await pool.release(conn)
        self._pools.used.add(conn)
        return reply_value(reply)

    async def _connection(self, pool: Any) -> Any:
        """A connection of the pool, waiting up to ``wait_timeout`` for a free one."""
        from redis.exceptions import RedisError

        from kumocore_lua_policy.redis_replies import RedisQueryError

        options = self._options
        try:
            return await pool.get_connection()
        except RedisError as exc:
            if "No connection available" in str(exc):  # BlockingConnectionPool's timeout
                raise RedisQueryError(
                    f"no redis connection to {options.label} became free within "
                    f"wait_timeout ({options.wait_timeout:g}s; pool_size {options.pool_size})"
                ) from None
            raise RedisQueryError(f"redis {options.label}: {exc}") from None

    async def _recycle(self, conn: Any) -> None:
        """KumoMTA's pool check before reusing a connection: a ``PING`` answered within
        ``recycle_timeout`` (else ``connect_timeout``), or a fresh connection. A server
        that restarted since the last query thus costs a reconnect, not a failed query."""
        from redis.exceptions import RedisError

        used = self._pools.used
        if conn not in used:
            return  # new: redis-py has just connected it
        used.discard(conn)
        limit = self._options.recycle_timeout or self._options.connect_timeout
        try:
            async with asyncio.timeout(limit):
                await conn.send_command("PING")
                await conn.read_response()
        except (RedisError, OSError, TimeoutError):
            await conn.disconnect()
            await conn.connect()


class RedisPools:
    """The connection pools of one process's ``redis.open`` handles, one per set of
    options (KumoMTA keeps them as long as the process: a policy reload keeps them too)."""

    def __init__(self) -> None:
        self._pools: dict[RedisOpenOptions, Any] = {}
        #: Connections that answered a query: checked (PING) before they serve another.
        self.used: weakref.WeakSet[Any] = weakref.WeakSet()

    @policy_function(table=True)
    def open(self, **options: Any) -> RedisConnection:
        """``redis.open { node = 'redis://host:port/', ... }`` (Lua: ``local redis =
        require 'redis'``): checks the options (``node``, ``pool_size``,
        ``connect_timeout``, ``wait_timeout``, ``response_timeout``, ``recycle_timeout``,
        ``username``, ``password``, ``cluster``, ``read_from_replicas``) and answers a handle
        whose ``conn:query(CMD, ...)`` (Python: ``await conn.query(...)``) sends a command
        and answers the reply as KumoMTA converts it. Nothing connects until the first
        query; handles with equal options share one pool. A cluster is refused."""
        return RedisConnection(RedisOpenOptions.from_table(options), self)

    def pool(self, options: RedisOpenOptions) -> Any:
        pool = self._pools.get(options)
        if pool is None:
            pool = self._pools[options] = _make_pool(options)
        return pool

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.disconnect()

    def functions(self) -> dict[str, Callable[..., Any]]:
        """``redis.open`` for ``kumo_register_policy_functions``."""
        return {"redis.open": self.open}


def _make_pool(options: RedisOpenOptions) -> Any:
    from redis.asyncio import BlockingConnectionPool
    from redis.asyncio.connection import parse_url

    from kumocore_lua_policy.redis_replies import StatusAwareParser

    url: dict[str, Any] = dict(parse_url(options.node))
    for key in ("username", "password"):  # explicit options win over the URL's
        if getattr(options, key) is not None:
            url[key] = getattr(options, key)
    # RESP2 said explicitly: redis-py 8 speaks RESP3 unless told (see redis_replies).
    url["protocol"] = 2
    return BlockingConnectionPool(
        max_connections=options.pool_size, timeout=options.wait_timeout,
        socket_connect_timeout=options.connect_timeout,
        socket_timeout=options.response_timeout, parser_class=StatusAwareParser, **url,
    )  # fmt: skip
