"""``kumo.configure_redis_throttles { ... }`` options, validated, and the client they build.

The keys are KumoMTA's (``RedisConnKey`` in crates/mod-redis): ``node`` (a URL, or a list
of URLs for a cluster), ``cluster``, ``pool_size``, ``connect_timeout``,
``response_timeout``, ``wait_timeout``, ``username``, ``password``,
``read_from_replicas``. Anything else is refused, naming the key, so a typo cannot
silently leave a fleet on per-node limits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kumocore import ConfigError, redis_service_label

_FUNCTION = "kumo.configure_redis_throttles"
_SCHEMES = ("redis", "rediss", "unix")
_DURATION_PART = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)")
_DURATION_UNITS = {
    "": 1.0, "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "ms": 1e-3, "msec": 1e-3, "millis": 1e-3, "us": 1e-6, "ns": 1e-9,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
}  # fmt: skip


def _fail(key: str, problem: str) -> ConfigError:
    return ConfigError(f"{_FUNCTION}: {key}: {problem}")


def parse_duration(key: str, value: object) -> float:
    """Seconds from a number or a humantime-style string: ``"30s"``, ``"1m 30s"``, ``"500ms"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        seconds, pos, text = 0.0, 0, value.strip().lower()
        while pos < len(text):
            match = _DURATION_PART.match(text, pos)
            if not match or match.group(2) not in _DURATION_UNITS:
                raise _fail(key, f"invalid duration {value!r} (examples: '30s', '500ms', '1m')")
            seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            pos = match.end()
    else:
        raise _fail(key, f"expected a duration like '30s' or a number of seconds, got {value!r}")
    if seconds <= 0:
        raise _fail(key, f"must be greater than zero, got {value!r}")
    return seconds


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``: safe for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    userinfo = f"{parts.username}:***" if parts.username else ":***"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{netloc}"))


def _nodes(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        nodes: tuple[object, ...] = (value,)
    elif isinstance(value, Mapping):  # a Lua array may arrive as {1: url, 2: url}
        nodes = tuple(value[k] for k in sorted(value))
    elif isinstance(value, list | tuple):
        nodes = tuple(value)
    else:
        raise _fail("node", f"expected a redis:// URL or a list of them, got {value!r}")
    if not nodes:
        raise _fail("node", "at least one node URL is required")
    from redis.asyncio.connection import parse_url

    for node in nodes:
        if not isinstance(node, str) or urlsplit(node).scheme not in _SCHEMES:
            raise _fail("node", f"expected a redis://host:port/ URL, got {node!r}")
        try:  # what the client will do later, so a bad URL fails here, by name
            parse_url(node)
        except ValueError as err:
            raise _fail("node", f"invalid URL {redact(node)}: {err}") from None
        parts = urlsplit(node)
        # redis-py silently ignores a database that is not a number; refuse it instead.
        database = parts.path.strip("/")
        if parts.scheme != "unix" and database and not database.isdigit():
            raise _fail("node", f"invalid database {database!r} in {redact(node)}")
    return tuple(str(node) for node in nodes)


def _bool(key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _fail(key, f"expected true or false, got {value!r}")
    return value


def _optional_str(key: str, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _fail(key, f"expected a string, got {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """Validated connection settings (durations in seconds)."""

    nodes: tuple[str, ...]
    cluster: bool = False
    pool_size: int = 10
    connect_timeout: float = 5.0
    # Bounds each command, so a Redis that hangs (rather than refusing) is detected and
    # the store falls back instead of stalling every delivery behind it.
    response_timeout: float = 2.0
    wait_timeout: float | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    read_from_replicas: bool = False

    @property
    def label(self) -> str:
        """The node URL(s), password redacted: what errors and logs name."""
        return ", ".join(redact(node) for node in self.nodes)

    @property
    def service(self) -> str:
        """The ``service`` label of ``redis_operation_latency``, shaped as KumoMTA's
        (``redis://127.0.0.1:6379/-1c291ca3``): the nodes and a checksum of the rest."""
        settings = (self.cluster, self.pool_size, self.connect_timeout, self.response_timeout,
                    self.wait_timeout, self.read_from_replicas)  # never the password
        return redis_service_label(self.nodes, self.username, settings)

    @classmethod
    def from_table(cls, options: Mapping[str, Any]) -> RedisOptions:
        """Validate ``kumo.configure_redis_throttles`` options; ConfigError names the key."""
        known = set(cls.__dataclass_fields__) - {"nodes"} | {"node"}
        for key in options:
            if key not in known:
                raise _fail(key, f"unknown option (known: {', '.join(sorted(known))})")
        if "node" not in options:
            raise _fail("node", "required (e.g. node = 'redis://127.0.0.1:6379/')")
        nodes = _nodes(options["node"])
        # KumoMTA: a list of nodes means a cluster unless `cluster` says otherwise.
        cluster = _bool("cluster", options.get("cluster", not isinstance(options["node"], str)))
        if not cluster and len(nodes) > 1:
            raise _fail("node", "several nodes are given but cluster = false")
        pool_size = options.get("pool_size", 10)
        if not isinstance(pool_size, int) or isinstance(pool_size, bool) or pool_size < 1:
            raise _fail("pool_size", f"expected a whole number >= 1, got {pool_size!r}")
        timeouts = {k: parse_duration(k, options[k])
                    for k in ("connect_timeout", "response_timeout", "wait_timeout")
                    if options.get(k) is not None}  # fmt: skip
        return cls(
            nodes=nodes,
            cluster=cluster,
            pool_size=pool_size,
            username=_optional_str("username", options.get("username")),
            password=_optional_str("password", options.get("password")),
            read_from_replicas=_bool(
                "read_from_replicas", options.get("read_from_replicas", False)
            ),
            **timeouts,
        )

    def connect(self) -> Any:
        """A ``redis.asyncio`` client (not yet connected: the first command connects)."""
        from redis.asyncio.connection import SSLConnection, parse_url
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        url: dict[str, Any] = dict(parse_url(self.nodes[0]))
        # Explicit options win over credentials embedded in the URL, as in KumoMTA.
        for key in ("username", "password"):
            if getattr(self, key) is not None:
                url[key] = getattr(self, key)
        common: dict[str, Any] = {
            "socket_connect_timeout": self.connect_timeout,
            "socket_timeout": self.response_timeout,
            # One immediate retry replaces a pooled connection that died with a Redis
            # restart; redis-py's default (10 retries, backing off) would stall callers for
            # seconds instead of letting the store fall back to local limits.
            "retry": Retry(NoBackoff(), 1),
        }
        if not self.cluster:
            from redis.asyncio import BlockingConnectionPool, Redis

            pool = BlockingConnectionPool(
                max_connections=self.pool_size, timeout=self.wait_timeout, **url, **common
            )
            return Redis.from_pool(pool)
        return self._connect_cluster(url, common, ssl=url.get("connection_class") is SSLConnection)

    def _connect_cluster(self, url: dict[str, Any], common: dict[str, Any], *, ssl: bool) -> Any:
        from redis.asyncio.cluster import ClusterNode, RedisCluster
        from redis.cluster import LoadBalancingStrategy

        startup = []
        for node in self.nodes:
            parts = urlsplit(node)
            startup.append(ClusterNode(parts.hostname or "127.0.0.1", parts.port or 6379))
        balancing = LoadBalancingStrategy.ROUND_ROBIN if self.read_from_replicas else None
        return RedisCluster(
            startup_nodes=startup, max_connections=self.pool_size, ssl=ssl,
            username=url.get("username"), password=url.get("password"),
            load_balancing_strategy=balancing, **common,
        )  # fmt: skip
