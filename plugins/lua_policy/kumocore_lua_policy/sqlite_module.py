"""KumoMTA's ``require 'sqlite'``: ``sqlite.open(PATH, [BUSY_TIMEOUT=500])`` and the handle's
``db:execute(QUERY, ...)`` and ``db:close()``, on Python's :mod:`sqlite3`.

Facts from KumoMTA's mod-sqlite, reproduced here:

* parameters are positional (``?``, several arguments or one array table) or named (one
  table ``{ name = v }`` binds ``:name``; a name the table lacks is NULL); only numbers,
  strings and nil may be bound;
* a statement without result columns answers the number of rows it changed (SQLite's
  ``changes()``); with one column, an array of its values; with several, an array of row
  tables keyed by column name; NULL is nil (so it leaves a hole or a missing key);
* integers stay integers, reals floats, text and blobs strings;
* the database is in autocommit mode (no implicit transactions: ``BEGIN`` is the
  policy's), and a closed handle answers "connection was closed";
* SQLite's errors read ``<message> (code <primary result code>)``.

Queries run on a small shared thread pool (as KumoMTA's ``spawn_blocking``), never on the
event loop, so a slow query costs its caller time, not every other client. One handle runs
one query at a time (an :class:`asyncio.Lock` queues the others without holding a pool
thread); a query whose caller goes away is interrupted.

Python policies get the same functions: ``db = kumo.sqlite.open(path)``, then
``await db.execute(sql, ...)``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kumocore import ConfigError, lua_type_name, policy_function

#: Threads running sqlite queries for the whole process (KumoMTA: tokio's blocking pool).
SQLITE_THREADS = 4
#: KumoMTA's default busy timeout, in milliseconds.
DEFAULT_BUSY_TIMEOUT_MS = 500

_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(SQLITE_THREADS, thread_name_prefix="kumo-sqlite")
    return _executor


class SqliteQueryError(ValueError):
    """A query failed; the text is what the policy's ``pcall`` sees."""


def _describe(exc: sqlite3.Error) -> str:
    """SQLite's message and primary result code, as KumoMTA's sqlite crate prints them."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return f"{exc} (code {code & 0xFF})"  # Python reports the extended code
    return str(exc)


def _text(raw: bytes) -> str | bytes:
    """A TEXT or BLOB value: a str when it is UTF-8, else its bytes (a Lua string either
    way; KumoMTA reads both as strings)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def _value(value: Any) -> Any:
    return _text(value) if isinstance(value, bytes) else value


def _check_param(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    raise SqliteQueryError("only numbers, strings and nil can be passed as parameter values")


class _NamedParams(dict[str, Any]):
    """Named parameters: a ``:name`` the table does not give is NULL, as in KumoMTA (which
    binds only the table's keys, and SQLite leaves an unbound parameter NULL)."""

    def __missing__(self, key: str) -> None:
        return None


def _params(params: Sequence[Any]) -> Sequence[Any] | dict[str, Any]:
    """KumoMTA's reading of execute's arguments after the query: none; one table (an array
    is positional, any other table named); or each argument positionally."""
    if len(params) == 1 and isinstance(params[0], Mapping):
        return _NamedParams({str(k): _check_param(v) for k, v in params[0].items()})
    if len(params) == 1 and isinstance(params[0], list | tuple):
        return [_check_param(v) for v in params[0]]
    return [_check_param(v) for v in params]


def _run(conn: sqlite3.Connection, sql: str, params: Sequence[Any] | dict[str, Any]) -> Any:
    """One query, in a pool thread: its result in KumoMTA's shape."""
    try:
        cursor = conn.execute(sql, params)
    except sqlite3.Error as exc:
        if isinstance(exc, sqlite3.ProgrammingError) and "binding" in str(exc):
            # The parameters do not fit the query: KumoMTA's context names both.
            raise SqliteQueryError(f"bind parameters {params!r} in query `{sql}': {exc}") from None
        raise SqliteQueryError(_describe(exc)) from None
    try:
        if cursor.description is None:  # no result columns: how many rows changed
            return conn.execute("SELECT changes()").fetchone()[0]
        names = [column[0] for column in cursor.description]
        rows = cursor.fetchall()
    except sqlite3.Error as exc:
        raise SqliteQueryError(_describe(exc)) from None
    finally:
        cursor.close()
    if len(names) == 1:
        return [_value(row[0]) for row in rows]
    return [{name: _value(v) for name, v in zip(names, row, strict=True) if v is not None}
            for row in rows]  # fmt: skip


class SqliteConnection:
    """The handle ``sqlite.open`` returns: ``db:execute(...)``, ``db:close()``."""

    __kumo_methods__ = True

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._path = path
        self._lock = asyncio.Lock()
        self._running = False

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"<sqlite {self._path} {state}>"

    async def execute(self, query: str, *params: Any) -> Any:
        """Run ``query`` with ``params``; see the module docstring for the result."""
        if not isinstance(query, str):
            raise SqliteQueryError(f"the query must be a string, got {type(query).__name__}")
        bound = _params(params)
        async with self._lock:
            conn = self._conn
            if conn is None:
                raise SqliteQueryError("connection was closed")
            return await self._in_pool(conn, lambda: _run(conn, query, bound))

    async def _in_pool(self, conn: sqlite3.Connection, work: Callable[[], Any]) -> Any:
        future = asyncio.get_running_loop().run_in_executor(_pool(), work)
        self._running = True
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # The caller went away (a client hung up): stop the query rather than let it
            # hold a pool thread; the lock stays held until it has really stopped.
            conn.interrupt()
            await asyncio.wait([future])
            raise
        finally:
            self._running = False
            if self._conn is None:
                conn.close()  # close() came while this query ran

    def close(self) -> None:
        """Close the handle; later queries fail, one running now finishes first."""
        conn, self._conn = self._conn, None
        if conn is not None and not self._running:
            conn.close()


def open_database(path: Any, busy_timeout: Any = None) -> SqliteConnection:
    """``sqlite.open(PATH, [BUSY_TIMEOUT=500])`` (Lua: ``local sqlite = require 'sqlite'``):
    the database at ``PATH`` (created when missing; ``:memory:`` for a private in-memory
    one), retrying a locked database for ``BUSY_TIMEOUT`` milliseconds. The handle has
    ``db:execute(QUERY, ...)`` (``?`` arguments, or one table of ``:name`` values; answers
    an array of values, an array of row tables, or the number of rows changed; Python:
    ``await db.execute(...)``) and ``db:close()``. Queries run off the event loop."""
    if isinstance(path, Mapping) and "open" in path and isinstance(busy_timeout, str):
        # `sqlite:open '/path'` (KumoMTA's DKIM key-source docs write it so; KumoMTA
        # itself refuses it): the module table came first.
        path, busy_timeout = busy_timeout, None
    if not isinstance(path, str):
        raise ConfigError(f"sqlite.open: PATH must be a string, got {lua_type_name(path)}")
    millis = DEFAULT_BUSY_TIMEOUT_MS if busy_timeout is None else busy_timeout
    if not isinstance(millis, int) or isinstance(millis, bool) or millis < 0:
        raise ConfigError(
            f"sqlite.open: BUSY_TIMEOUT must be a whole number of milliseconds, "
            f"got {busy_timeout!r}"
        )
    try:
        # isolation_level=None: autocommit, as the sqlite crate KumoMTA uses (Python's
        # default would open a transaction before each INSERT and never commit it).
        conn = sqlite3.connect(
            path, timeout=millis / 1000, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise SqliteQueryError(f"sqlite.open {path}: {_describe(exc)}") from None
    conn.text_factory = bytes  # decoded by _value: text that is not UTF-8 stays bytes
    return SqliteConnection(conn, path)


def sqlite_functions() -> dict[str, Callable[..., Any]]:
    """``sqlite.open`` for ``kumo_register_policy_functions`` (``require 'sqlite'`` in Lua)."""
    return {"sqlite.open": policy_function(table=False)(open_database)}
